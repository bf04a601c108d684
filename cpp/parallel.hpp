// A fork-join pool for independent tasks, shared by the compiled kernels that run many
// independent pieces of work (the runs of train_many; batched proximal operators): worker threads
// take task indices in increasing order as they become free (a dynamic schedule, so tasks of
// unequal cost balance themselves) while the calling thread waits and, if asked, polls (progress,
// cancellation). Threads are started per call and joined before it returns: a call owns no state
// after it returns, so concurrent calls from different threads do not interfere.
// Pure C++: no Python types.
#pragma once

#include <cstddef>
#include <functional>

namespace structdrop::parallel {

// The number of workers for `tasks` tasks: `requested`, or the hardware concurrency when
// requested <= 0; never more than `tasks`, at least 1.
int worker_count(int requested, std::size_t tasks);

// Runs task(i) once for every i in [0, count) on worker_count(threads, count) worker threads.
// With one worker and no poll the tasks run on the calling thread. When `poll` is set, the caller
// calls it about every `poll_interval` seconds (at least 0.01) while tasks run, never
// concurrently with itself; a poll that throws is not called again. If a task (or poll) throws,
// workers take no new task, and the first exception is rethrown once every worker has stopped.
// Cancellation is the caller's: e.g. a flag that poll sets and the tasks read.
void for_each_index(std::size_t count, int threads, const std::function<void(std::size_t)>& task,
                    const std::function<void()>& poll = {}, double poll_interval = 0.25);

}  // namespace structdrop::parallel
