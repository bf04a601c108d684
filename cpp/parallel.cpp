// The fork-join pool: see parallel.hpp.
#include "parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace structdrop::parallel {

int worker_count(int requested, std::size_t tasks) {
  std::size_t n = requested > 0 ? static_cast<std::size_t>(requested)
                                : static_cast<std::size_t>(std::max(1u, std::thread::hardware_concurrency()));
  n = std::min(n, std::max<std::size_t>(tasks, 1));
  return static_cast<int>(n);
}

void for_each_index(std::size_t count, int threads, const std::function<void(std::size_t)>& task,
                    const std::function<void()>& poll, double poll_interval) {
  if (count == 0) return;
  const int workers = worker_count(threads, count);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::condition_variable finished;
  std::exception_ptr error;
  int running = workers;

  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!error) error = e;
    stop.store(true);
  };
  auto work = [&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const std::size_t i = next.fetch_add(1);
      if (i >= count) break;
      try {
        task(i);
      } catch (...) {
        fail(std::current_exception());
      }
    }
  };

  if (workers == 1 && !poll) {
    work();
    if (error) std::rethrow_exception(error);
    return;
  }

  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(workers));
  try {
    for (int k = 0; k < workers; ++k)
      pool.emplace_back([&] {
        work();
        std::lock_guard<std::mutex> lock(mutex);
        if (--running == 0) finished.notify_all();
      });
  } catch (...) {  // a thread could not start: stop the others and report
    stop.store(true);
    for (std::thread& thread : pool) thread.join();
    throw;
  }

  bool polling = static_cast<bool>(poll);
  {
    std::unique_lock<std::mutex> lock(mutex);
    const auto interval = std::chrono::duration<double>(std::max(0.01, poll_interval));
    while (running > 0) {
      if (!polling) {
        finished.wait(lock, [&] { return running == 0; });
        break;
      }
      if (finished.wait_for(lock, interval, [&] { return running == 0; })) break;
      lock.unlock();
      try {
        poll();
      } catch (...) {
        polling = false;
        fail(std::current_exception());
      }
      lock.lock();
    }
  }
  for (std::thread& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace structdrop::parallel
