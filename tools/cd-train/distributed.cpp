#include "cd-train/distributed.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "util/errors.h"

#if CATDOG_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if CATDOG_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#if CATDOG_HAVE_GLOO || CATDOG_HAVE_NCCL
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace cd {

namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi)
    throw UsageError(std::string(name) + "='" + v + "' is not an integer in [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(n);
}

class SingleProcess : public Group {
 public:
  SingleProcess() : Group(0, 1) {}
  void allreduce_sum(at::Tensor&) override {}
  void broadcast_from_root(at::Tensor&) override {}
  at::Tensor allgather_rows(const at::Tensor& local) override { return local; }
};

#if CATDOG_HAVE_GLOO || CATDOG_HAVE_NCCL
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::chrono::milliseconds timeout_of(const DistSettings& s) {
  return std::chrono::milliseconds(static_cast<long>(s.timeout_s * 1000));
}

// A c10d process group of either backend; collectives run on the backend's
// device (CPU for Gloo, this rank's GPU for NCCL) and results come back to
// the tensor's own.
template <typename Backend>
class C10dGroup : public Group {
 public:
  template <typename Make>
  C10dGroup(const DistSettings& s, c10::Device device, Make make)
      : Group(s.rank, s.world), m_device(device), m_timeout_s(s.timeout_s) {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(s.master_port);
    opts.isServer = s.rank == 0;
    opts.numWorkers = s.world;
    opts.waitWorkers = true;
    opts.timeout = timeout_of(s);
    try {
      m_pg = make(c10::make_intrusive<c10d::TCPStore>(s.master_addr, opts));
    } catch (const std::exception& e) {
      throw Error("distributed: rank " + std::to_string(s.rank) + " of " + std::to_string(s.world) +
                  " could not join the group at " + s.master_addr + ":" +
                  std::to_string(s.master_port) + " within " +
                  std::to_string(static_cast<int>(s.timeout_s)) + " s: " + first_line(e.what()) +
                  "; start every rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE");
    }
  }

  void allreduce_sum(at::Tensor& flat) override {
    std::vector<at::Tensor> t{flat.to(m_device)};
    run("all-reduce", [&] { return m_pg->allreduce(t); });
    if (!t[0].is_same(flat)) flat.copy_(t[0]);
  }
  void broadcast_from_root(at::Tensor& flat) override {
    std::vector<at::Tensor> t{flat.to(m_device)};
    run("broadcast", [&] { return m_pg->broadcast(t); });
    if (!t[0].is_same(flat)) flat.copy_(t[0]);
  }
  at::Tensor allgather_rows(const at::Tensor& local) override {
    // Collectives gather equal shapes: pad every rank's rows to the largest count.
    at::Tensor sizes = gather(at::tensor({local.size(0)}, at::kLong)).to(at::kCPU).contiguous();
    std::vector<int64_t> counts(sizes.data_ptr<int64_t>(), sizes.data_ptr<int64_t>() + world());
    int64_t most = *std::max_element(counts.begin(), counts.end());
    auto shape = local.sizes().vec();
    shape[0] = most;
    at::Tensor padded = at::zeros(shape, local.options());
    padded.narrow(0, 0, local.size(0)).copy_(local);
    at::Tensor all = gather(padded).to(local.device());  // [world * most, ...]
    std::vector<at::Tensor> parts;
    for (int r = 0; r < world(); ++r) parts.push_back(all.narrow(0, r * most, counts[r]));
    return at::cat(parts);
  }

 private:
  at::Tensor gather(const at::Tensor& local) {
    std::vector<at::Tensor> in{local.to(m_device)};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < world(); ++r) out[0].push_back(at::empty_like(in[0]));
    run("all-gather", [&] { return m_pg->allgather(out, in); });
    return at::cat(out[0]);
  }

  template <typename Op>
  void run(const char* what, Op op) {
    try {
      op()->wait();
    } catch (const std::exception& e) {
      throw Error("distributed: rank " + std::to_string(rank()) + " lost the group during " + what +
                  " (" + first_line(e.what()) +
                  "); another rank died or stalled past distributed.timeout_s (" +
                  std::to_string(static_cast<int>(m_timeout_s)) + " s); restart every rank");
    }
  }

  c10::intrusive_ptr<Backend> m_pg;
  c10::Device m_device;
  double m_timeout_s;
};
#endif

#if CATDOG_HAVE_GLOO
std::unique_ptr<Group> join_gloo(const DistSettings& s) {
  return std::make_unique<C10dGroup<c10d::ProcessGroupGloo>>(
      s, c10::Device(c10::kCPU), [&](const c10::intrusive_ptr<c10d::Store>& store) {
        auto options = c10d::ProcessGroupGloo::Options::create(timeout_of(s));
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        options->threads = 1;
        return c10::make_intrusive<c10d::ProcessGroupGloo>(store, s.rank, s.world, options);
      });
}
#endif

#if CATDOG_HAVE_NCCL
std::unique_ptr<Group> join_nccl(const DistSettings& s) {
  int local = env_int("LOCAL_RANK", 0, 0, 65535);
  return std::make_unique<C10dGroup<c10d::ProcessGroupNCCL>>(
      s, c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local)),
      [&](const c10::intrusive_ptr<c10d::Store>& store) {
        auto options = c10d::ProcessGroupNCCL::Options::create();
        options->timeout = timeout_of(s);
        return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, s.rank, s.world, options);
      });
}
#endif

}  // namespace

DistSettings dist_from_env(const std::string& backend, double timeout_s) {
  DistSettings s;
  s.backend = backend;
  s.timeout_s = timeout_s;
  s.world = env_int("WORLD_SIZE", 1, 1, 65536);
  if (s.world == 1) return s;
  if (!std::getenv("RANK")) throw UsageError("WORLD_SIZE is set but RANK is not; set both");
  s.rank = env_int("RANK", 0, 0, s.world - 1);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) s.master_addr = addr;
  s.master_port = env_int("MASTER_PORT", s.master_port, 1, 65535);
  return s;
}

std::unique_ptr<Group> join_group(const DistSettings& s) {
  if (s.world == 1) return std::make_unique<SingleProcess>();
  if (s.backend != "gloo" && s.backend != "nccl")
    throw UsageError("distributed.backend '" + s.backend + "' is not known; allowed: gloo|nccl");
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Group> group;
#if CATDOG_HAVE_NCCL
  if (s.backend == "nccl") group = join_nccl(s);
#else
  if (s.backend == "nccl")
    throw UsageError(
        "distributed.backend nccl needs a CUDA LibTorch built with NCCL (and nccl.h at build "
        "time); this build has gloo");
#endif
#if CATDOG_HAVE_GLOO
  if (s.backend == "gloo") group = join_gloo(s);
#endif
  if (!group)
    throw UsageError("WORLD_SIZE=" + std::to_string(s.world) + " but this cd-train was built " +
                     "without c10d's " + s.backend +
                     " (for gloo: install libgloo-dev and rebuild)");
  spdlog::info("distributed: rank {} of {} joined {}:{} ({}) in {:.1f} s", s.rank, s.world,
               s.master_addr, s.master_port, s.backend,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return group;
}

std::size_t steps_per_epoch(std::size_t total, std::size_t batch_size) {
  return (total + batch_size - 1) / batch_size;
}

std::size_t rows_of_step(std::size_t total, std::size_t batch_size, std::size_t step) {
  std::size_t begin = step * batch_size;
  return begin >= total ? 0 : std::min(batch_size, total - begin);
}

std::size_t rows_of_rank(std::size_t total, std::size_t batch_size, std::size_t step, int rank,
                         int world) {
  std::size_t n = rows_of_step(total, batch_size, step);
  auto r = static_cast<std::size_t>(rank), w = static_cast<std::size_t>(world);
  return n > r ? (n - r + w - 1) / w : 0;
}

double share_of_step(std::size_t total, std::size_t batch_size, std::size_t step, int rank,
                     int world) {
  return static_cast<double>(rows_of_rank(total, batch_size, step, rank, world)) /
         static_cast<double>(rows_of_step(total, batch_size, step));
}

std::vector<std::size_t> shard_batches(const std::vector<std::size_t>& order,
                                       std::size_t batch_size, int rank, int world) {
  std::vector<std::size_t> out;
  for (std::size_t begin = 0; begin < order.size(); begin += batch_size) {
    std::size_t end = std::min(order.size(), begin + batch_size);
    for (std::size_t i = begin + static_cast<std::size_t>(rank); i < end;
         i += static_cast<std::size_t>(world))
      out.push_back(order[i]);
  }
  return out;
}

std::vector<std::size_t> interleaved(std::size_t n, int rank, int world) {
  std::vector<std::size_t> out;
  for (std::size_t i = static_cast<std::size_t>(rank); i < n; i += static_cast<std::size_t>(world))
    out.push_back(i);
  return out;
}

at::Tensor gather_interleaved(Group& group, const at::Tensor& local, std::size_t n) {
  if (group.world() == 1) return local;
  at::Tensor stacked = group.allgather_rows(local);  // rank 0's rows, then rank 1's, ...
  std::vector<int64_t> where(n);
  std::size_t k = 0;
  for (int r = 0; r < group.world(); ++r)
    for (std::size_t i : interleaved(n, r, group.world())) where[i] = static_cast<int64_t>(k++);
  return stacked.index_select(0, at::tensor(where));
}

std::vector<double> sum_over_ranks(Group& group, const std::vector<double>& values) {
  if (group.world() == 1) return values;
  at::Tensor t = at::tensor(values, at::kDouble);
  group.allreduce_sum(t);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

}  // namespace cd
