#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <numeric>
#include <set>

#include "cd-train/distributed.h"
#include "util/errors.h"

namespace {

std::vector<std::size_t> iota(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

struct EnvVar {
  EnvVar(const char* name, const char* value) : m_name(name) {
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~EnvVar() { unsetenv(m_name); }
  const char* m_name;
};

}  // namespace

TEST_CASE("each global batch is split over the ranks, disjoint and complete", "[distributed]") {
  std::vector<std::size_t> order{9, 3, 7, 1, 0, 8, 2, 6, 5, 4, 10};  // 11 rows, batch 4
  for (int world : {1, 2, 3, 5}) {
    std::multiset<std::size_t> seen;
    for (int rank = 0; rank < world; ++rank) {
      auto mine = cd::shard_batches(order, 4, rank, world);
      std::size_t expected = 0;
      for (std::size_t step = 0; step < cd::steps_per_epoch(order.size(), 4); ++step)
        expected += cd::rows_of_rank(order.size(), 4, step, rank, world);
      CHECK(mine.size() == expected);
      seen.insert(mine.begin(), mine.end());
    }
    CHECK(seen == std::multiset<std::size_t>(order.begin(), order.end()));
  }
  // Rank 1 of 2 takes the second and fourth row of each batch of 4.
  CHECK(cd::shard_batches(order, 4, 1, 2) == std::vector<std::size_t>{3, 1, 8, 6, 4});
  CHECK(cd::steps_per_epoch(11, 4) == 3);
  CHECK(cd::rows_of_step(11, 4, 2) == 3);
  CHECK(cd::rows_of_rank(11, 4, 2, 2, 3) == 1);
  CHECK(cd::rows_of_rank(11, 4, 2, 2, 5) == 1);
  CHECK(cd::rows_of_rank(11, 4, 2, 3, 5) == 0);  // the last batch has no row for rank 3
}

TEST_CASE("interleaved rows gather back in order in a group of one", "[distributed]") {
  CHECK(cd::interleaved(7, 1, 3) == std::vector<std::size_t>{1, 4});
  CHECK(cd::interleaved(7, 0, 1) == iota(7));
  auto group = cd::join_group({});
  CHECK(group->world() == 1);
  CHECK(group->root());
  at::Tensor local = at::arange(6, at::kFloat).view({3, 2});
  CHECK(cd::gather_interleaved(*group, local, 3).equal(local));
  CHECK(cd::sum_over_ranks(*group, {1.5, 2}) == std::vector<double>{1.5, 2});
}

TEST_CASE("the rendezvous variables are read as torchrun and PyTorchJob set them",
          "[distributed]") {
  {
    EnvVar w("WORLD_SIZE", nullptr);
    CHECK(cd::dist_from_env("gloo", 30).world == 1);
  }
  {
    EnvVar w("WORLD_SIZE", "4"), r("RANK", "3"), a("MASTER_ADDR", "trainer-0"),
        p("MASTER_PORT", "23456");
    auto s = cd::dist_from_env("gloo", 30);
    CHECK(s.world == 4);
    CHECK(s.rank == 3);
    CHECK(s.master_addr == "trainer-0");
    CHECK(s.master_port == 23456);
    CHECK(s.timeout_s == 30);
  }
  {
    EnvVar w("WORLD_SIZE", "2"), r("RANK", nullptr);
    CHECK_THROWS_WITH(cd::dist_from_env("gloo", 30), Catch::Contains("RANK is not"));
  }
  {
    EnvVar w("WORLD_SIZE", "2"), r("RANK", "2");
    CHECK_THROWS_WITH(cd::dist_from_env("gloo", 30), Catch::Contains("RANK='2'"));
  }
  {
    EnvVar w("WORLD_SIZE", "two");
    CHECK_THROWS_AS(cd::dist_from_env("gloo", 30), cd::UsageError);
  }
  cd::DistSettings nccl;
  nccl.world = 2;
  nccl.backend = "nccl";
  CHECK_THROWS_WITH(cd::join_group(nccl), Catch::Contains("CUDA LibTorch"));
}
