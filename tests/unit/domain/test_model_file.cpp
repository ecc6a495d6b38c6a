#include "catch_torch.h"

#include "domain/model_file.h"
#include "helpers.h"
#include "nn/classifier.h"
#include "nn/nets.h"
#include "nn/weights.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/hash.h"

namespace {

std::string write_model(const cd::test::TempDir& dir, const std::string& arch, int size) {
  auto net = cd::build_network(arch, size);
  cd::ModelMeta meta;
  meta.architecture = arch;
  meta.preprocess.size = size;
  meta.created = cd::utc_now_iso8601();
  std::string path = dir.file(arch + ".cdm");
  cd::write_file_atomic(path, cd::pack_file({cd::FileKind::k_model, cd::meta_to_json(meta),
                                             cd::serialize_module(*net)}));
  return path;
}

// What loading these bytes as a model file says: its ModelError, or "loaded".
std::string load_message(const cd::test::TempDir& dir, const std::string& content) {
  cd::write_file_atomic(dir.file("x.cdm"), content);
  try {
    cd::load_classifier(dir.file("x.cdm"));
  } catch (const cd::ModelError& e) {
    return e.what();
  }
  return "loaded";
}

}  // namespace

TEST_CASE("the baseline has the original's 9.68M parameters at 224", "[nets]") {
  auto net = cd::build_network("baseline", 224);
  CHECK(cd::count_parameters(*net) == 9679041);
  CHECK(cd::forward_gflops("baseline", 224) == Approx(1.11).epsilon(0.02));
  auto compact = cd::build_network("compact", 128);
  CHECK(cd::count_parameters(*compact) < 1500000);
  CHECK_THROWS_AS(cd::build_network("resnet", 224), cd::UsageError);
}

TEST_CASE("a model file round-trips metadata and predictions", "[model]") {
  cd::test::TempDir dir;
  std::string path = write_model(dir, "compact", 64);
  auto a = cd::load_classifier(path);
  auto b = cd::load_classifier(path);
  CHECK(a->meta().architecture == "compact");
  CHECK(a->meta().preprocess.size == 64);
  at::Tensor x = at::rand({3, 3, 64, 64});
  auto pa = a->predict(x), pb = b->predict(x);
  REQUIRE(pa.size() == 3);
  CHECK(pa == pb);
  for (float p : pa) CHECK((p > 0.0f && p < 1.0f));
  CHECK(cd::read_model_meta(path).created == a->meta().created);
}

TEST_CASE("truncated, foreign, newer and mismatched files are ModelErrors", "[model]") {
  cd::test::TempDir dir;
  std::string path = write_model(dir, "compact", 64);
  std::string bytes = cd::read_file(path);
  auto load_error = [&](const std::string& content) { return load_message(dir, content); };
  CHECK_THAT(load_error(bytes.substr(0, bytes.size() - 100)), Catch::Contains("file is truncated"));
  CHECK_THAT(load_error(bytes.substr(0, 10)), Catch::Contains("file is truncated"));
  CHECK_THAT(load_error("PK\x03\x04 a zip file"), Catch::Contains("not a catdog model file"));
  std::string newer = bytes;
  newer[8] = 99;
  CHECK_THAT(load_error(newer), Catch::Contains("format version 99 is newer"));
  // Weights of one architecture under another's metadata.
  std::string baseline = cd::read_file(write_model(dir, "baseline", 64));
  auto parts = cd::unpack_file(baseline, "b");
  parts.meta["architecture"] = "compact";
  CHECK_THAT(load_error(cd::pack_file(parts)), Catch::Contains("weights do not match"));
  CHECK_THROWS_AS(cd::load_classifier(dir.file("missing.cdm")), cd::ModelError);
}

TEST_CASE("a checksum covers every byte of the model file", "[model]") {
  cd::test::TempDir dir;
  std::string bytes = cd::read_file(write_model(dir, "compact", 64));
  auto load_error = [&](const std::string& content) { return load_message(dir, content); };
  CHECK(load_error(bytes) == "loaded");
  // Inverted weights, a changed threshold in the metadata, one flipped bit:
  // each would load and answer wrongly without the checksum.
  for (std::size_t at : {bytes.size() / 2, bytes.size() - 200, std::size_t{40}}) {
    std::string bad = bytes;
    for (std::size_t i = at; i < at + 8; ++i) bad[i] = static_cast<char>(~bad[i]);
    INFO(at);
    CHECK_THAT(load_error(bad), Catch::Contains("checksum mismatch"));
  }
  std::string flipped = bytes;
  flipped[bytes.size() / 3] ^= 1;
  CHECK_THAT(load_error(flipped), Catch::Contains("checksum mismatch"));
  CHECK_THAT(load_error(bytes + "x"), Catch::Contains("the file is corrupt"));
}

TEST_CASE("a model file of format 3 (FNV-1a checksum) still loads, and is checked", "[model]") {
  cd::test::TempDir dir;
  std::string bytes = cd::read_file(write_model(dir, "compact", 64));
  REQUIRE(bytes[8] == 4);
  std::string v3 = bytes.substr(0, bytes.size() - 8);
  v3[8] = 3;
  std::uint64_t fnv = cd::fnv1a64(v3);
  for (int i = 0; i < 8; ++i) v3 += static_cast<char>((fnv >> (8 * i)) & 0xff);
  auto load_error = [&](const std::string& content) { return load_message(dir, content); };
  CHECK(load_error(v3) == "loaded");
  // A version-3 file whose checksum is the new one is as corrupt as any other.
  std::string mixed = bytes;
  mixed[8] = 3;
  CHECK_THAT(load_error(mixed), Catch::Contains("checksum mismatch"));
}

TEST_CASE("non-finite weights and out-of-range metadata are refused at load", "[model]") {
  cd::test::TempDir dir;
  auto net = cd::build_network("compact", 64);
  {
    c10::NoGradGuard no_grad;
    net->parameters()[0].view({-1})[3] = std::numeric_limits<float>::quiet_NaN();
  }
  cd::ModelMeta meta;
  meta.preprocess.size = 64;
  std::string path = dir.file("nan.cdm");
  cd::write_file_atomic(path, cd::pack_file({cd::FileKind::k_model, cd::meta_to_json(meta),
                                             cd::serialize_module(*net)}));
  CHECK_THROWS_WITH(cd::load_classifier(path), Catch::Contains("holds NaN or Inf"));
  auto json = cd::meta_to_json(meta);
  json["arch_params"]["bn_eps"] = -1e-3;
  CHECK_THROWS_WITH(cd::meta_from_json(json, "m"), Catch::Contains("bn_eps is out of range"));
  json["arch_params"]["bn_eps"] = 1e-3;
  CHECK_NOTHROW(cd::meta_from_json(json, "m"));
}
