// Python glue for cpp/sgd.hpp and cpp/random.hpp: argument checks, GIL release, docstrings.
// The public API is structdrop.train / structdrop.train_many (python/structdrop/training.py).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "random.hpp"
#include "register.hpp"
#include "sgd.hpp"

namespace py = pybind11;

namespace structdrop::bindings {
namespace {

using FArray = py::array_t<double, py::array::f_style>;
using CBytes = py::array_t<std::uint8_t, py::array::c_style>;

SchemeParams scheme_params(int kind, double theta, long block_size, double gamma) {
  if (kind < 0 || kind > 4) throw std::invalid_argument("scheme kind must be 0..4, got " + std::to_string(kind));
  SchemeParams params;
  params.kind = static_cast<SchemeKind>(kind);
  params.theta = theta;
  params.block_size = block_size;
  params.gamma = gamma;
  return params;
}

void require_matrix(const FArray& array, const char* name) {
  if (array.ndim() != 2) throw std::invalid_argument(std::string(name) + " must be 2-D");
}

FArray to_array(const Matrix& M) {
  FArray out({M.rows(), M.cols()});
  std::copy(M.data(), M.data() + M.size(), out.mutable_data());
  return out;
}

py::array_t<double> to_array(const std::vector<double>& v) {
  py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

py::array_t<std::int64_t> to_array(const std::vector<long long>& v) {
  py::array_t<std::int64_t> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

TrainData train_data(const FArray& X, const FArray& Y) {
  require_matrix(X, "X");
  require_matrix(Y, "Y");
  if (X.shape(1) != Y.shape(1)) throw std::invalid_argument("X and Y must have the same number of columns N");
  return make_train_data(X.data(), Y.data(), static_cast<long>(Y.shape(0)), static_cast<long>(X.shape(0)),
                         static_cast<long>(X.shape(1)));
}

// Many runs; one tuple per run: (status, message, step, U, V, record_steps, stochastic,
// deterministic, seconds); status is "ok", "diverged", "cancelled" or "failed".
py::list train_runs(const FArray& X, const FArray& Y, const std::vector<FArray>& U0, const std::vector<FArray>& V0,
                    const std::vector<int>& kind, const std::vector<double>& theta, const std::vector<long>& block_size,
                    const std::vector<double>& gamma, const std::vector<double>& lr,
                    const std::vector<long long>& iterations, const std::vector<long>& batch_size,
                    const std::vector<long long>& record_every, const std::vector<std::uint64_t>& seed,
                    const std::vector<double>& lr_decay, int threads, const py::object& progress, double interval) {
  const std::size_t runs = U0.size();
  const std::size_t sizes[] = {V0.size(),           kind.size(), theta.size(),      block_size.size(),
                               gamma.size(),        lr.size(),   iterations.size(), batch_size.size(),
                               record_every.size(), seed.size(), lr_decay.size()};
  for (const std::size_t size : sizes)
    if (size != runs) throw std::invalid_argument("every per-run list must have one entry per run");
  TrainData data = train_data(X, Y);
  std::vector<TrainJob> jobs(runs);
  for (std::size_t j = 0; j < runs; ++j) {
    require_matrix(U0[j], "U0");
    require_matrix(V0[j], "V0");
    if (U0[j].shape(0) != data.a || V0[j].shape(0) != data.b || U0[j].shape(1) != V0[j].shape(1))
      throw std::invalid_argument("run " + std::to_string(j) + ": U0 must be a x d and V0 b x d, got " +
                                  std::to_string(U0[j].shape(0)) + " x " + std::to_string(U0[j].shape(1)) + " and " +
                                  std::to_string(V0[j].shape(0)) + " x " + std::to_string(V0[j].shape(1)));
    TrainJob& job = jobs[j];
    job.settings.scheme = scheme_params(kind[j], theta[j], block_size[j], gamma[j]);
    job.settings.lr = lr[j];
    job.settings.iterations = iterations[j];
    job.settings.batch_size = batch_size[j];
    job.settings.record_every = record_every[j];
    job.settings.seed = seed[j];
    job.settings.lr_decay = lr_decay[j];
    job.U0 = U0[j].data();
    job.V0 = V0[j].data();
    job.d = static_cast<long>(U0[j].shape(1));
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

  py::list out;
  for (const TrainJobResult& result : results) {
    const char* status = "ok";
    switch (result.status) {
      case TrainJobResult::Status::ok:
        status = "ok";
        break;
      case TrainJobResult::Status::diverged:
        status = "diverged";
        break;
      case TrainJobResult::Status::cancelled:
        status = "cancelled";
        break;
      case TrainJobResult::Status::failed:
        status = "failed";
        break;
    }
    if (result.status == TrainJobResult::Status::ok) {
      const TrainOutput& o = result.output;
      out.append(py::make_tuple(status, result.message, result.diverged_step, to_array(o.U), to_array(o.V),
                                to_array(o.record_steps), to_array(o.stochastic), to_array(o.deterministic),
                                o.seconds));
    } else {
      out.append(py::make_tuple(status, result.message, result.diverged_step, py::none(), py::none(), py::none(),
                                py::none(), py::none(), 0.0));
    }
  }
  return out;
}

}  // namespace

void register_sgd(py::module_& m) {
  m.def("sgd_train_runs", &train_runs, py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("U0"), py::arg("V0"),
        py::arg("kind"), py::arg("theta"), py::arg("block_size"), py::arg("gamma"), py::arg("lr"),
        py::arg("iterations"), py::arg("batch_size"), py::arg("record_every"), py::arg("seed"), py::arg("lr_decay"),
        py::arg("threads") = 0, py::arg("progress") = py::none(), py::arg("interval") = 0.25,
        "Masked SGD (Algorithm 1) runs in C++ threads with the GIL released. X (b x N), Y (a x N), U0[j]\n"
        "(a x d_j), V0[j] (b x d_j): float64 Fortran-ordered (not copied; U0/V0 copied into the run).\n"
        "Per-run lists of scheme scalars and settings. progress(done, total) is called about every\n"
        "`interval` s from the calling thread. Returns one tuple per run: (status, message, step, U, V,\n"
        "record_steps, stochastic, deterministic, seconds).");

  m.def(
      "sgd_draws",
      [](int kind, double theta, long block_size, double gamma, long d, long b, long N, std::uint64_t seed,
         long long first_step, long long steps, long batch) {
        const SchemeStats stats = scheme_stats(scheme_params(kind, theta, block_size, gamma), d);
        if (b < 1 || N < 1) throw std::invalid_argument("b and N must be >= 1");
        if (first_step < 1 || steps < 0 || batch < 1)
          throw std::invalid_argument("first_step >= 1, steps >= 0, batch >= 1");
        const long n = kind == static_cast<int>(SchemeKind::dropconnect) ? b * d : d;
        py::array_t<std::int64_t> index({static_cast<py::ssize_t>(steps), static_cast<py::ssize_t>(batch)});
        CBytes masks({static_cast<py::ssize_t>(steps), static_cast<py::ssize_t>(batch), static_cast<py::ssize_t>(n)});
        {
          std::int64_t* idx = index.mutable_data();
          std::uint8_t* mask = masks.mutable_data();
          py::gil_scoped_release release;
          for (long long t = 0; t < steps; ++t)
            for (long s = 0; s < batch; ++s) {
              long long value = 0;
              draw_slot(stats, b, N, seed, first_step + t, s, &value, mask + (t * batch + s) * n);
              idx[t * batch + s] = value;
            }
        }
        return py::make_tuple(index, masks);
      },
      py::arg("kind"), py::arg("theta"), py::arg("block_size"), py::arg("gamma"), py::arg("d"), py::arg("b"),
      py::arg("N"), py::arg("seed"), py::arg("first_step"), py::arg("steps"), py::arg("batch"),
      "The sample indices (steps x batch) and masks (steps x batch x n, 0/1 bytes; n = d, or b*d for\n"
      "dropconnect with entry (j, i) of the b x d mask at i*b + j) that training with this seed draws\n"
      "at steps first_step .. first_step + steps - 1.");

  m.def(
      "sgd_step",
      [](const FArray& U, const FArray& V, const FArray& Xb, const FArray& Yb, const CBytes& masks, int kind,
         double theta, long block_size, double gamma, double lr) {
        require_matrix(U, "U");
        require_matrix(V, "V");
        require_matrix(Xb, "Xb");
        require_matrix(Yb, "Yb");
        const long a = static_cast<long>(U.shape(0)), d = static_cast<long>(U.shape(1)),
                   b = static_cast<long>(V.shape(0)), B = static_cast<long>(Xb.shape(1));
        if (V.shape(1) != d || Xb.shape(0) != b || Yb.shape(0) != a || Yb.shape(1) != B || B < 1)
          throw std::invalid_argument("shapes must be U a x d, V b x d, Xb b x B, Yb a x B");
        const SchemeStats stats = scheme_stats(scheme_params(kind, theta, block_size, gamma), d);
        const long n = kind == static_cast<int>(SchemeKind::dropconnect) ? b * d : d;
        if (masks.ndim() != 2 || masks.shape(0) != B || masks.shape(1) != n)
          throw std::invalid_argument("masks must be B x n (n = d, or b*d for dropconnect)");
        Matrix Un = Eigen::Map<const Matrix>(U.data(), a, d), Vn = Eigen::Map<const Matrix>(V.data(), b, d);
        {
          const Eigen::Map<const Matrix> xb(Xb.data(), b, B), yb(Yb.data(), a, B);
          py::gil_scoped_release release;
          masked_sgd_step(stats, Un, Vn, xb, yb, masks.data(), lr);
        }
        return py::make_tuple(to_array(Un), to_array(Vn));
      },
      py::arg("U").noconvert(), py::arg("V").noconvert(), py::arg("Xb").noconvert(), py::arg("Yb").noconvert(),
      py::arg("masks").noconvert(), py::arg("kind"), py::arg("theta"), py::arg("block_size"), py::arg("gamma"),
      py::arg("lr"),
      "One masked-SGD step with given samples Xb (b x B), Yb (a x B) and masks (B x n): the\n"
      "training loop's arithmetic. Returns the new (U, V); the inputs are not modified.");

  m.def(
      "sgd_stochastic_loss",
      [](const FArray& X, const FArray& Y, const FArray& U, const FArray& V, const CBytes& mask, int kind, double theta,
         long block_size, double gamma) {
        const TrainData data = train_data(X, Y);
        require_matrix(U, "U");
        require_matrix(V, "V");
        const long d = static_cast<long>(U.shape(1));
        if (U.shape(0) != data.a || V.shape(0) != data.b || V.shape(1) != d)
          throw std::invalid_argument("U must be a x d and V b x d");
        const SchemeStats stats = scheme_stats(scheme_params(kind, theta, block_size, gamma), d);
        const long n = kind == static_cast<int>(SchemeKind::dropconnect) ? data.b * d : d;
        if (mask.ndim() != 1 || mask.shape(0) != n) throw std::invalid_argument("mask must have n entries");
        const Eigen::Map<const Matrix> u(U.data(), data.a, d), v(V.data(), data.b, d);
        return stochastic_loss(stats, data.moments, u, v, mask.data());
      },
      py::arg("X").noconvert(), py::arg("Y").noconvert(), py::arg("U").noconvert(), py::arg("V").noconvert(),
      py::arg("mask").noconvert(), py::arg("kind"), py::arg("theta"), py::arg("block_size"), py::arg("gamma"),
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
