// Checks cpp/parallel.hpp's fork-join pool by counting: every index runs exactly once for any
// thread count, the first task exception reaches the caller after every worker stopped, poll runs
// on the calling thread while tasks run, and a flag set by poll stops the remaining tasks.
// Built and run by .ci/compile-checks; exits non-zero with a message on the first failure.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "parallel.hpp"

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  using structdrop::parallel::for_each_index;
  using structdrop::parallel::worker_count;

  check(worker_count(3, 10) == 3 && worker_count(8, 2) == 2 && worker_count(0, 1) == 1 && worker_count(-1, 5) >= 1,
        "worker_count clamps to [1, tasks]");

  for (int threads : {0, 1, 2, 3, 8}) {
    std::vector<std::atomic<int>> hits(1000);
    for_each_index(hits.size(), threads, [&](std::size_t i) { hits[i].fetch_add(1); });
    bool once = true;
    for (auto& h : hits) once = once && h.load() == 1;
    check(once, "every index runs exactly once");
  }
  for_each_index(0, 4, [&](std::size_t) { check(false, "no task for count 0"); });

  for (int threads : {1, 4}) {
    std::atomic<int> ran{0};
    bool caught = false;
    try {
      // Tasks after the failing one take 5 ms each, so the other workers cannot run out the
      // remaining 89 tasks (about 110 ms on 4 workers) in the moment between the throw and the stop.
      for_each_index(100, threads, [&](std::size_t i) {
        ran.fetch_add(1);
        if (i == 10) throw std::runtime_error("task 10");
        if (i > 10) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "task 10";
    }
    check(caught, "a task's exception reaches the caller");
    check(ran.load() < 100, "no new task after an exception");
  }

  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> cancel{false};
  std::atomic<int> polls{0}, skipped{0};
  bool poll_on_caller = true;
  for_each_index(
      200, 2,
      [&](std::size_t) {
        if (cancel.load()) {
          skipped.fetch_add(1);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      },
      [&] {
        poll_on_caller = poll_on_caller && std::this_thread::get_id() == caller;
        if (polls.fetch_add(1) == 2) cancel.store(true);
      },
      0.01);
  check(polls.load() >= 3, "poll runs while tasks run");
  check(poll_on_caller, "poll runs on the calling thread");
  check(skipped.load() > 0, "a flag set by poll reaches the tasks");

  if (failures == 0) std::printf("parallel.hpp: counts, exceptions, polling and cancellation as documented\n");
  return failures == 0 ? 0 : 1;
}
