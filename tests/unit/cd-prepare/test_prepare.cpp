#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "cd-prepare/prepare.h"
#include "helpers.h"
#include "util/atomic_file.h"
#include "util/errors.h"

using cd::test::source_path;
using cd::test::write_bytes;

namespace {

std::string sample(const std::string& name) {
  return cd::read_file(source_path("data/sample/images/" + name));
}

// A folder holding each kind of bad input next to real photos.
void make_messy_folder(const std::string& dir) {
  for (int i = 10; i < 20; ++i) {
    write_bytes(dir + "/cat." + std::to_string(i) + ".jpg",
                sample("cat." + std::to_string(i) + ".jpg"));
    write_bytes(dir + "/dog." + std::to_string(i) + ".jpg",
                sample("dog." + std::to_string(i) + ".jpg"));
  }
  write_bytes(dir + "/cat.1.jpg", "");
  write_bytes(dir + "/cat.2.jpg",
              cd::read_file(source_path("tests/fixtures/formats/truncated.jpg")));
  write_bytes(dir + "/dog.2.jpg", "this is a text file, not a photo\n");
  write_bytes(dir + "/dog.3.png",
              cd::read_file(source_path("tests/fixtures/formats/tiny-5x5.png")));
  write_bytes(dir + "/cat.4.PNG", cd::read_file(source_path("tests/fixtures/formats/cat-png.png")));
  write_bytes(dir + "/dog.99.jpg", sample("dog.10.jpg"));  // duplicate of dog.10.jpg
  write_bytes(dir + "/horse.1.jpg", sample("cat.30.jpg"));
  write_bytes(dir + "/notes.txt", "hello");
}

std::map<std::string, std::string> reasons(const cd::PrepareResult& r) {
  std::map<std::string, std::string> out;
  for (const auto& x : r.rejected)
    out[std::filesystem::path(x.path).filename().string()] = x.reason;
  return out;
}

}  // namespace

TEST_CASE("cd-prepare rejects each bad file with its reason and drops duplicates", "[prepare]") {
  cd::test::TempDir dir;
  make_messy_folder(dir.path());
  cd::PrepareParams params;
  params.source = dir.path();
  params.threads = 2;
  cd::PrepareResult result = cd::run_prepare(params);
  auto why = reasons(result);
  CHECK(result.found == 28);
  CHECK(why["cat.1.jpg"] == "empty file (0 bytes)");
  CHECK(why["cat.2.jpg"] == "truncated JPEG (no end-of-image marker)");
  CHECK(why["dog.2.jpg"] == "not a decodable image (expected JPEG, PNG, BMP or WebP)");
  CHECK(why["dog.3.png"] == "too small: 5x5 (minimum 32x32)");
  CHECK(why["horse.1.jpg"] ==
        "unknown class 'horse' in file name (expected cat.N.jpg or dog.N.jpg)");
  CHECK(why["notes.txt"].find("unsupported extension '.txt'") == 0);
  CHECK(why.count("cat.4.PNG") == 0);  // upper-case extension, valid PNG: accepted
  REQUIRE(result.duplicates.size() == 1);
  CHECK(result.duplicates[0].path == dir.path() + "/dog.99.jpg");
  CHECK(result.duplicates[0].duplicate_of == dir.path() + "/dog.10.jpg");
  std::size_t kept = result.splits[0].size() + result.splits[1].size() + result.splits[2].size();
  CHECK(kept == 21);
}

TEST_CASE("class subfolders cat/, cats/, dog/, dogs/ are read, others rejected", "[prepare]") {
  cd::test::TempDir dir;
  write_bytes(dir.file("cats/a.jpg"), sample("cat.0.jpg"));
  write_bytes(dir.file("cat/nested/b.JPEG"), sample("cat.1.jpg"));
  write_bytes(dir.file("Dogs/c.jpg"), sample("dog.0.jpg"));
  write_bytes(dir.file("horses/d.jpg"), sample("dog.1.jpg"));
  write_bytes(dir.file(".hidden/e.jpg"), sample("dog.2.jpg"));
  auto found = cd::scan_source(dir.path());
  REQUIRE(found.size() == 4);
  std::map<std::string, cd::Candidate> by_name;
  for (auto& c : found) by_name[std::filesystem::path(c.path).filename().string()] = c;
  CHECK(by_name["a.jpg"].label == 0);
  CHECK(by_name["b.JPEG"].label == 0);
  CHECK(by_name["c.jpg"].label == 1);
  CHECK(by_name["d.jpg"].reject.find("unknown class folder 'horses'") == 0);
  CHECK_THROWS_AS(cd::scan_source(dir.file("missing")), cd::UsageError);
}

TEST_CASE("the split is stratified, seeded and covers every sample once", "[prepare]") {
  std::vector<cd::Sample> samples;
  for (int i = 0; i < 100; ++i) samples.push_back({"c" + std::to_string(i), 0});
  for (int i = 0; i < 50; ++i) samples.push_back({"d" + std::to_string(i), 1});
  std::vector<cd::Sample> a[3], b[3], c[3];
  cd::stratified_split(samples, {0.8, 0.1, 0.1}, 42, a);
  cd::stratified_split(samples, {0.8, 0.1, 0.1}, 42, b);
  cd::stratified_split(samples, {0.8, 0.1, 0.1}, 43, c);
  auto count = [](const std::vector<cd::Sample>& v, int label) {
    return std::count_if(v.begin(), v.end(), [&](const cd::Sample& s) { return s.label == label; });
  };
  CHECK(count(a[0], 0) == 80);
  CHECK(count(a[0], 1) == 40);
  CHECK(count(a[1], 0) == 10);
  CHECK(count(a[2], 1) == 5);
  CHECK(cd::format_manifest(a[0]) == cd::format_manifest(b[0]));
  CHECK(cd::format_manifest(a[0]) != cd::format_manifest(c[0]));
  std::size_t total = a[0].size() + a[1].size() + a[2].size();
  CHECK(total == 150);
}

TEST_CASE("the same input and seed give byte-identical outputs", "[prepare]") {
  cd::test::TempDir dir;
  make_messy_folder(dir.file("src"));
  cd::PrepareParams params;
  params.source = dir.file("src");
  for (const char* out : {"out1", "out2"}) {
    params.output = dir.file(out);
    params.threads = std::string(out) == "out1" ? 1 : 2;
    cd::write_prepare_outputs(params, cd::run_prepare(params));
  }
  for (const char* f : {"train.csv", "val.csv", "test.csv", "report.json", "metrics.json"}) {
    INFO(f);
    CHECK(cd::read_file(dir.file(std::string("out1/") + f)) ==
          cd::read_file(dir.file(std::string("out2/") + f)));
  }
  CHECK(cd::read_file(dir.file("out1/report.json")).find("\"reason\": \"empty file (0 bytes)\"") !=
        std::string::npos);
}

TEST_CASE("split fractions must add up to one", "[prepare]") {
  cd::PrepareParams params;
  params.source = source_path("data/sample/images");
  params.split = {0.5, 0.1, 0.1};
  CHECK_THROWS_AS(cd::run_prepare(params), cd::UsageError);
}

TEST_CASE("an exclusion list takes its files out after the split, every other file staying put",
          "[prepare]") {
  cd::test::TempDir dir;
  for (int i = 10; i < 40; ++i)
    for (const char* c : {"cat.", "dog."})
      write_bytes(dir.file(std::string("src/") + c + std::to_string(i) + ".jpg"),
                  sample(std::string(c) + std::to_string(i) + ".jpg"));
  cd::PrepareParams params;
  params.source = dir.file("src");
  params.threads = 2;
  cd::PrepareResult all = cd::run_prepare(params);
  write_bytes(dir.file("exclude.txt"),
              "# suspected label errors\ncat.12.jpg\n\ndog.31.jpg   # two animals\ncat.99.jpg\n");
  params.exclude = dir.file("exclude.txt");
  cd::PrepareResult some = cd::run_prepare(params);
  CHECK(some.excluded ==
        std::vector<std::string>{dir.file("src/cat.12.jpg"), dir.file("src/dog.31.jpg")});
  CHECK(some.unmatched == std::vector<std::string>{"cat.99.jpg"});
  for (int s = 0; s < 3; ++s) {
    std::vector<cd::Sample> expected;
    for (const auto& x : all.splits[s])
      if (x.path != dir.file("src/cat.12.jpg") && x.path != dir.file("src/dog.31.jpg"))
        expected.push_back(x);
    REQUIRE(some.splits[s].size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i)
      CHECK(some.splits[s][i].path == expected[i].path);
  }
  params.output = dir.file("out");
  cd::write_prepare_outputs(params, some);
  std::string report = cd::read_file(params.output + "/report.json");
  CHECK(report.find("\"exclude_unmatched\": [\n    \"cat.99.jpg\"") != std::string::npos);
  // A path with '/' names one file under the source; a list that is not there is a usage error.
  write_bytes(dir.file("exclude.txt"), "src-less/cat.13.jpg\ncat.13.jpg/\n");
  CHECK(cd::run_prepare(params).excluded.empty());
  params.exclude = dir.file("missing.txt");
  CHECK_THROWS_AS(cd::run_prepare(params), cd::UsageError);
}
