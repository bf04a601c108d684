// Python glue for cpp/sgd.hpp and cpp/random.hpp: argument checks, GIL release, docstrings.
// The public API is structdrop.train / structdrop.train_many (python/structdrop/training.py): it
// validates each run's settings, builds one SgdJob per run and reads back one SgdResult per run.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "random.hpp"
#include "register.hpp"
#include "sgd.hpp"

namespace structdrop::bindings {
namespace {

using CBytes = py::array_t<std::uint8_t, py::array::c_style>;

// One run's inputs (immutable). U0 and V0 are held, not copied: the engine copies them into the run.
struct SgdJob {
  FArray U0, V0;  // a x d and b x d, float64, Fortran-ordered
  TrainSettings settings;
};

// One run's outputs. status is "ok", "diverged" (diverged_step, message), "cancelled" or "failed"
// (message); the arrays are None unless status is "ok".
struct SgdResult {
  std::string status;
  std::string message;
  long long diverged_step = 0;
  py::object U = py::none(), V = py::none(), record_steps = py::none(), stochastic = py::none(),
             deterministic = py::none();
  double seconds = 0.0;
};

SgdJob make_job(const FArray& U0, const FArray& V0, const SchemeParams& scheme, double lr, long long iterations,
                std::ptrdiff_t batch_size, long long record_every, std::uint64_t seed, double lr_decay) {
  require_ndim(U0, 2, "U0");
  require_ndim(V0, 2, "V0");
  if (U0.shape(1) != V0.shape(1))
    throw std::invalid_argument("U0 (a x d) and V0 (b x d) must have the same number of columns d, got " +
                                std::to_string(U0.shape(1)) + " and " + std::to_string(V0.shape(1)));
  SgdJob job{U0, V0, {}};
  job.settings.scheme = scheme;
  job.settings.lr = lr;
  job.settings.iterations = iterations;
  job.settings.batch_size = batch_size;
  job.settings.record_every = record_every;
  job.settings.seed = seed;
  job.settings.lr_decay = lr_decay;
  return job;
}

// Length of one mask: d hidden units, or the b x d entries of V for dropconnect.
std::ptrdiff_t mask_length(const SchemeParams& scheme, std::ptrdiff_t b, std::ptrdiff_t d) {
  return scheme.kind == SchemeKind::dropconnect ? b * d : d;
}

const char* status_name(TrainJobResult::Status status) {
  switch (status) {
    case TrainJobResult::Status::ok:
      return "ok";
    case TrainJobResult::Status::diverged:
      return "diverged";
    case TrainJobResult::Status::cancelled:
      return "cancelled";
    case TrainJobResult::Status::failed:
      return "failed";
  }
  return "failed";
}

TrainData train_data(const FArray& X, const FArray& Y) {
  require_ndim(X, 2, "X");
  require_ndim(Y, 2, "Y");
  if (X.shape(1) != Y.shape(1)) throw std::invalid_argument("X and Y must have the same number of columns N");
  return make_train_data(X.data(), Y.data(), static_cast<std::ptrdiff_t>(Y.shape(0)),
                         static_cast<std::ptrdiff_t>(X.shape(0)), static_cast<std::ptrdiff_t>(X.shape(1)));
}

// Many runs, one SgdResult per SgdJob, in order.
std::vector<SgdResult> train_runs(const FArray& X, const FArray& Y, const std::vector<SgdJob>& sgd_jobs, int threads,
                                  const py::object& progress, double interval) {
  const std::size_t runs = sgd_jobs.size();
  TrainData data = train_data(X, Y);
  std::vector<TrainJob> jobs(runs);
  for (std::size_t j = 0; j < runs; ++j) {
    const SgdJob& in = sgd_jobs[j];
    if (in.U0.shape(0) != data.a || in.V0.shape(0) != data.b)
      throw std::invalid_argument("run " + std::to_string(j) + ": U0 must be a x d and V0 b x d, got " +
                                  std::to_string(in.U0.shape(0)) + " x " + std::to_string(in.U0.shape(1)) + " and " +
                                  std::to_string(in.V0.shape(0)) + " x " + std::to_string(in.V0.shape(1)));
    TrainJob& job = jobs[j];
    job.settings = in.settings;
    job.U0 = in.U0.data();
    job.V0 = in.V0.data();
    job.d = static_cast<std::ptrdiff_t>(in.U0.shape(1));
  }

  // Called from the waiting thread about every `interval` seconds: Ctrl-C and progress.
  bool interrupted = false;
  auto monitor = [&](long long done, long long total) -> bool {
    py::gil_scoped_acquire acquire;
    if (interrupted) return false;
    if (PyErr_CheckSignals() != 0) {
      interrupted = true;
      return false;
    }
    if (!progress.is_none()) {
      try {
        progress(done, total);
      } catch (py::error_already_set& error) {
        error.restore();
        interrupted = true;
        return false;
      }
    }
    return true;
  };

  std::vector<TrainJobResult> results;
  {
    py::gil_scoped_release release;
    results = train_many(data, jobs, threads, monitor, interval);
  }
  if (interrupted) {
    if (PyErr_Occurred()) throw py::error_already_set();
    throw std::runtime_error("training interrupted");
  }

  std::vector<SgdResult> out(runs);
  for (std::size_t j = 0; j < runs; ++j) {
    const TrainJobResult& result = results[j];
    SgdResult& o = out[j];
    o.status = status_name(result.status);
    o.message = result.message;
    o.diverged_step = result.diverged_step;
    if (result.status == TrainJobResult::Status::ok) {
      o.U = to_numpy(result.output.U);
      o.V = to_numpy(result.output.V);
      o.record_steps = to_numpy(result.output.record_steps);
      o.stochastic = to_numpy(result.output.stochastic);
      o.deterministic = to_numpy(result.output.deterministic);
      o.seconds = result.output.seconds;
    }
  }
  return out;
}

}  // namespace

void register_sgd(py::module_& m) {
  py::class_<SgdJob>(m, "SgdJob",
                     "One masked-SGD run's inputs (immutable): initial factors U0 (a x d) and V0 (b x d),\n"
                     "float64 Fortran-ordered (held, not copied), the scheme and the settings of\n"
                     "structdrop.train. Validated by sgd_train_runs (ValueError naming the run).")
      .def(py::init(&make_job), py::arg("U0").noconvert(), py::arg("V0").noconvert(), py::arg("scheme"), py::arg("lr"),
           py::arg("iterations"), py::arg("batch_size") = 1, py::arg("record_every") = 100, py::arg("seed") = 0,
           py::arg("lr_decay") = 0.0)
      .def_readonly("U0", &SgdJob::U0)
      .def_readonly("V0", &SgdJob::V0)
      .def_property_readonly("scheme", [](const SgdJob& j) { return j.settings.scheme; })
      .def_property_readonly("lr", [](const SgdJob& j) { return j.settings.lr; })
      .def_property_readonly("iterations", [](const SgdJob& j) { return j.settings.iterations; })
      .def_property_readonly("batch_size", [](const SgdJob& j) { return j.settings.batch_size; })
      .def_property_readonly("record_every", [](const SgdJob& j) { return j.settings.record_every; })
      .def_property_readonly("seed", [](const SgdJob& j) { return j.settings.seed; })
      .def_property_readonly(
          "lr_decay", [](const SgdJob& j) { return j.settings.lr_decay; },
          "t0 of lr / (1 + (t - 1)/t0); 0.0: constant step size")
      .def("__repr__",
           [](const SgdJob& j) {
             const TrainSettings& s = j.settings;
             return "SgdJob(U0 " + std::to_string(j.U0.shape(0)) + " x " + std::to_string(j.U0.shape(1)) + ", V0 " +
                    std::to_string(j.V0.shape(0)) + " x " + std::to_string(j.V0.shape(1)) +
                    ", scheme=" + py::repr(py::cast(s.scheme)).cast<std::string>() +
                    ", lr=" + py::repr(py::float_(s.lr)).cast<std::string>() +
                    ", iterations=" + std::to_string(s.iterations) + ", batch_size=" + std::to_string(s.batch_size) +
                    ", record_every=" + std::to_string(s.record_every) + ", seed=" + std::to_string(s.seed) +
                    ", lr_decay=" + py::repr(py::float_(s.lr_decay)).cast<std::string>() + ")";
           })
      // Pickled with its arrays (train_many(client=...) ships jobs to Dask workers); an array that
      // comes back in C order is made Fortran-ordered again (a copy of that run's U0 or V0 only).
      .def(py::pickle(
          [](const SgdJob& j) {
            const TrainSettings& s = j.settings;
            return py::make_tuple(j.U0, j.V0, s.scheme, s.lr, s.iterations, s.batch_size, s.record_every, s.seed,
                                  s.lr_decay);
          },
          [](const py::tuple& t) {
            if (t.size() != 9) throw std::invalid_argument("SgdJob state must have 9 entries");
            return make_job(t[0].cast<FArray>(), t[1].cast<FArray>(), t[2].cast<SchemeParams>(), t[3].cast<double>(),
                            t[4].cast<long long>(), t[5].cast<std::ptrdiff_t>(), t[6].cast<long long>(),
                            t[7].cast<std::uint64_t>(), t[8].cast<double>());
          }));

  py::class_<SgdResult>(m, "SgdResult",
                        "One masked-SGD run's outputs. status: 'ok', 'diverged' (diverged_step and message\n"
                        "say where), 'cancelled' or 'failed' (message); U, V, record_steps, stochastic and\n"
                        "deterministic are arrays when status is 'ok', None otherwise.")
      .def_readonly("status", &SgdResult::status)
      .def_readonly("message", &SgdResult::message)
      .def_readonly("diverged_step", &SgdResult::diverged_step)
      .def_readonly("U", &SgdResult::U, "final U (a x d)")
      .def_readonly("V", &SgdResult::V, "final V (b x d)")
      .def_readonly("record_steps", &SgdResult::record_steps, "steps recorded (int64)")
      .def_readonly("stochastic", &SgdResult::stochastic, "one-mask loss at each recorded step")
      .def_readonly("deterministic", &SgdResult::deterministic, "exact objective at each recorded step")
      .def_readonly("seconds", &SgdResult::seconds, "wall time of the run's loop")
      .def("__repr__", [](const SgdResult& r) {
        return "SgdResult(status=" + py::repr(py::str(r.status)).cast<std::string>() +
               ", diverged_step=" + std::to_string(r.diverged_step) +
               ", seconds=" + py::repr(py::float_(r.seconds)).cast<std::string>() + ")";
      });

  m.def("sgd_train_runs", &train_runs, py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("jobs"),
        py::arg("threads") = 0, py::arg("progress") = py::none(), py::arg("interval") = 0.25,
        "Masked SGD (Algorithm 1) runs in C++ threads with the GIL released. X (b x N) and Y (a x N):\n"
        "float64 Fortran-ordered (not copied); jobs: one SgdJob per run. progress(done, total) is\n"
        "called about every `interval` s from the calling thread. Returns one SgdResult per job.");

  m.def(
      "sgd_draws",
      [](const SchemeParams& scheme, std::ptrdiff_t d, std::ptrdiff_t b, std::ptrdiff_t N, std::uint64_t seed,
         long long first_step, long long steps, std::ptrdiff_t batch) {
        const SchemeStats stats = scheme_stats(scheme, d);
        if (b < 1 || N < 1) throw std::invalid_argument("b and N must be >= 1");
        if (first_step < 1 || steps < 0 || batch < 1)
          throw std::invalid_argument("first_step >= 1, steps >= 0, batch >= 1");
        const std::ptrdiff_t n = mask_length(scheme, b, d);
        py::array_t<std::int64_t> index({static_cast<py::ssize_t>(steps), static_cast<py::ssize_t>(batch)});
        CBytes masks({static_cast<py::ssize_t>(steps), static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(n)});
        {
          std::int64_t* idx = index.mutable_data();
          std::uint8_t* mask = masks.mutable_data();
          py::gil_scoped_release release;
          for (long long t = 0; t < steps; ++t)
            for (std::ptrdiff_t s = 0; s < batch; ++s) {
              long long value = 0;
              draw_slot(stats, b, N, seed, first_step + t, s, &value, mask + (t * batch + s) * n);
              idx[t * batch + s] = value;
            }
        }
        return py::make_tuple(index, masks);
      },
      py::arg("scheme"), py::arg("d"), py::arg("b"), py::arg("N"), py::arg("seed"), py::arg("first_step"),
      py::arg("steps"), py::arg("batch"),
      "The sample indices (steps x batch) and masks (steps x batch x n, 0/1 bytes; n = d, or b*d for\n"
      "dropconnect with entry (j, i) of the b x d mask at i*b + j) that training with this seed draws\n"
      "at steps first_step .. first_step + steps - 1.");

  m.def(
      "sgd_step",
      [](const FArray& U, const FArray& V, const FArray& Xb, const FArray& Yb, const CBytes& masks,
         const SchemeParams& scheme, double lr) {
        require_ndim(U, 2, "U");
        require_ndim(V, 2, "V");
        require_ndim(Xb, 2, "Xb");
        require_ndim(Yb, 2, "Yb");
        const std::ptrdiff_t a = static_cast<std::ptrdiff_t>(U.shape(0)), d = static_cast<std::ptrdiff_t>(U.shape(1)),
                             b = static_cast<std::ptrdiff_t>(V.shape(0)), B = static_cast<std::ptrdiff_t>(Xb.shape(1));
        if (V.shape(1) != d || Xb.shape(0) != b || Yb.shape(0) != a || Yb.shape(1) != B || B < 1)
          throw std::invalid_argument("shapes must be U a x d, V b x d, Xb b x B, Yb a x B");
        const SchemeStats stats = scheme_stats(scheme, d);
        const std::ptrdiff_t n = mask_length(scheme, b, d);
        if (masks.ndim() != 2 || masks.shape(0) != B || masks.shape(1) != n)
          throw std::invalid_argument("masks must be B x n (n = d, or b*d for dropconnect)");
        Matrix Un = Eigen::Map<const Matrix>(U.data(), a, d), Vn = Eigen::Map<const Matrix>(V.data(), b, d);
        {
          const Eigen::Map<const Matrix> xb(Xb.data(), b, B), yb(Yb.data(), a, B);
          py::gil_scoped_release release;
          masked_sgd_step(stats, Un, Vn, xb, yb, masks.data(), lr);
        }
        return py::make_tuple(to_numpy(Un), to_numpy(Vn));
      },
      py::arg("U").noconvert(), py::arg("V").noconvert(), py::arg("Xb").noconvert(), py::arg("Yb").noconvert(),
      py::arg("masks").noconvert(), py::arg("scheme"), py::arg("lr"),
      "One masked-SGD step with given samples Xb (b x B), Yb (a x B) and masks (B x n): the\n"
      "training loop's arithmetic. Returns the new (U, V); the inputs are not modified.");

  m.def(
      "sgd_stochastic_loss",
      [](const FArray& X, const FArray& Y, const FArray& U, const FArray& V, const CBytes& mask,
         const SchemeParams& scheme) {
        const TrainData data = train_data(X, Y);
        require_ndim(U, 2, "U");
        require_ndim(V, 2, "V");
        const std::ptrdiff_t d = static_cast<std::ptrdiff_t>(U.shape(1));
        if (U.shape(0) != data.a || V.shape(0) != data.b || V.shape(1) != d)
          throw std::invalid_argument("U must be a x d and V b x d");
        const SchemeStats stats = scheme_stats(scheme, d);
        const std::ptrdiff_t n = mask_length(scheme, data.b, d);
        if (mask.ndim() != 1 || mask.shape(0) != n) throw std::invalid_argument("mask must have n entries");
        const Eigen::Map<const Matrix> u(U.data(), data.a, d), v(V.data(), data.b, d);
        return stochastic_loss(stats, data.moments, u, v, mask.data());
      },
      py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("U").noconvert(), py::arg("V").noconvert(),
      py::arg("mask").noconvert(), py::arg("scheme"),
      "||Y - U D V^T X||^2 for one mask (n = d or b*d 0/1 bytes), from the data moments.");

  m.def("sgd_kernel_isa", &sgd_kernel_isa,
        "The instruction set of the masked-SGD loops: 'avx512', 'avx2' or 'baseline' (bit-identical results).");
  m.def("set_sgd_kernel_isa", &set_sgd_kernel_isa, py::arg("name"),
        "Force the masked-SGD loops to 'baseline', 'avx2' or 'avx512' (or back to 'auto'), for tests and benchmarks.");

  m.def(
      "philox4x32_10",
      [](std::array<std::uint32_t, 4> counter, std::array<std::uint32_t, 2> key) {
        return rng::philox4x32_10(counter, key);
      },
      py::arg("counter"), py::arg("key"), "The Philox4x32-10 block function (Random123's), for known-answer tests.");
}

}  // namespace structdrop::bindings
