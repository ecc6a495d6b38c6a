// Data-parallel training across processes with PyTorch's own c10d stack: a
// TCPStore rendezvous at MASTER_ADDR:MASTER_PORT and a Gloo (or, in a CUDA
// LibTorch built with it, NCCL) process group of WORLD_SIZE ranks, named the
// way torchrun and Kubeflow's PyTorchJob name them.
//
// Each rank takes a disjoint, seeded shard of every epoch's order: within each
// global batch of B rows, rank r takes positions r, r+W, r+2W, ... Gradients
// are weighted by each rank's share of the global batch and summed, so W ranks
// step exactly as one process with batch B would (BatchNorm aside, which sees
// only its rank's rows).
#pragma once

#include <ATen/Tensor.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace cd {

struct DistSettings {
  int world = 1;
  int rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string backend = "gloo";  // gloo | nccl
  double timeout_s = 300;        // rendezvous and every collective
};

// WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT from the environment; without
// WORLD_SIZE (or with 1) a single process. Throws UsageError naming the
// variable that is malformed or missing.
DistSettings dist_from_env(const std::string& backend, double timeout_s);

class Group {
 public:
  virtual ~Group() = default;
  int rank() const { return m_rank; }
  int world() const { return m_world; }
  bool root() const { return m_rank == 0; }
  // In place, over every rank. A lost or hung peer throws cd::Error (exit
  // code 1) naming this rank and the timeout, never hangs past it.
  virtual void allreduce_sum(at::Tensor& flat) = 0;
  virtual void broadcast_from_root(at::Tensor& flat) = 0;
  // Every rank's `local` ([rows, ...], rows may differ by rank) stacked in
  // rank order: [sum of rows, ...].
  virtual at::Tensor allgather_rows(const at::Tensor& local) = 0;

 protected:
  Group(int rank, int world) : m_rank(rank), m_world(world) {}

 private:
  int m_rank, m_world;
};

// A group of one when settings.world is 1; otherwise joins the process group
// (blocking until every rank has, or the timeout).
std::unique_ptr<Group> join_group(const DistSettings& settings);

// The positions of `order` that rank takes, global batch by global batch.
std::vector<std::size_t> shard_batches(const std::vector<std::size_t>& order,
                                       std::size_t batch_size, int rank, int world);
// How many rows of global batch `step` (batch_size rows, the last one
// shorter) rank takes, and how many the batch has.
std::size_t rows_of_rank(std::size_t total, std::size_t batch_size, std::size_t step, int rank,
                         int world);
std::size_t rows_of_step(std::size_t total, std::size_t batch_size, std::size_t step);
std::size_t steps_per_epoch(std::size_t total, std::size_t batch_size);
// Rank's rows of global batch `step` over the batch's: the weight of its
// gradients in the sum.
double share_of_step(std::size_t total, std::size_t batch_size, std::size_t step, int rank,
                     int world);

// Rows [0, n) interleaved over ranks (r, r+W, ...) and gathered back in order.
std::vector<std::size_t> interleaved(std::size_t n, int rank, int world);
at::Tensor gather_interleaved(Group& group, const at::Tensor& local, std::size_t n);

// Sums, over every rank, of a few doubles (loss sums, counts).
std::vector<double> sum_over_ranks(Group& group, const std::vector<double>& values);

}  // namespace cd
