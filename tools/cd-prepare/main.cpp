// cd-prepare: validate, deduplicate and split a folder of cat and dog photos.
#include <spdlog/spdlog.h>

#include "cd-prepare/prepare.h"
#include "util/config.h"
#include "util/errors.h"
#include "util/options.h"

namespace {

int prepare_main(int argc, char** argv) {
  cd::PrepareParams params;
  cd::CommonOptions common;
  cd::Config config("cd-prepare", "Validate, deduplicate and split cat/dog images into manifests.");
  config.set_default_config_file("configs/prepare.yaml");
  config.add_string("source", params.source,
                    "folder of images (cat.N.jpg/dog.N.jpg, or cat/ and dog/ subfolders)");
  config.add_string("output", params.output,
                    "where train.csv, val.csv, test.csv, report.json and metrics.json go");
  config.add_int("seed", params.seed, "random seed of the split", 0, 2147483647);
  config.add_doubles("split", params.split, "train,val,test fractions adding up to 1", 3, 0.0, 1.0);
  config.add_int("min_size", params.min_size, "smallest accepted width and height in pixels", 1,
                 4096, "min-size");
  config.add_string("exclude", params.exclude,
                    "a list of files to leave out, one file name (or path under the source) a "
                    "line, '#' comments; taken out after the split");
  cd::add_common_options(config, common);
  if (config.parse(argc, argv) == cd::ParseOutcome::k_exit_ok) return 0;
  if (params.source.empty())
    throw cd::UsageError("--source is required (a folder of cat/dog images)");
  params.threads = cd::apply_common_options(common);

  cd::PrepareResult result = cd::run_prepare(params);
  cd::write_prepare_outputs(params, result);
  std::size_t kept = result.splits[0].size() + result.splits[1].size() + result.splits[2].size();
  spdlog::info(
      "{} files: {} kept ({} train, {} val, {} test), {} rejected, {} duplicates; "
      "{:.1f} s, {:.0f} files/s with {} threads",
      result.found, kept, result.splits[0].size(), result.splits[1].size(), result.splits[2].size(),
      result.rejected.size(), result.duplicates.size(), result.seconds,
      result.found / std::max(result.seconds, 1e-9), params.threads);
  if (!params.exclude.empty())
    spdlog::info("{} files left out as {} lists them; {} of its entries named no file here",
                 result.excluded.size(), params.exclude, result.unmatched.size());
  for (const auto& r : result.rejected) spdlog::warn("rejected {}: {}", r.path, r.reason);
  for (const auto& d : result.duplicates)
    spdlog::warn("duplicate {} of {}", d.path, d.duplicate_of);
  if (kept == 0)
    throw cd::DataError("no usable images in '" + params.source + "'; see " + params.output +
                        "/report.json");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cd::run_tool("cd-prepare", argc, argv, prepare_main); }
