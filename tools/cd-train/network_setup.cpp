// The network a training run starts from (see network_setup.h).
#include "cd-train/network_setup.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "nn/darknet_import.h"
#include "nn/efficientnet.h"
#include "nn/weights.h"
#include "util/errors.h"

namespace cd {

namespace {

// model.init: the network starts as a trained model left it, e.g. fine-tuning
// that begins from the head a frozen run fitted (linear probe, then fine-tune),
// so the first steps refine a good classifier instead of a zero head.
void start_from(const std::string& path, const ModelMeta& wanted, NetworkImpl& net) {
  FileParts parts = read_parts(path, FileKind::k_model);
  ModelMeta meta = meta_from_json(parts.meta, path);
  auto describe = [](const ModelMeta& m) {
    return m.architecture + " at " + std::to_string(m.preprocess.size) + " (" +
           m.arch_params.dump() + ")";
  };
  if (meta.architecture != wanted.architecture || meta.arch_params != wanted.arch_params ||
      meta.preprocess.size != wanted.preprocess.size)
    throw UsageError("model.init " + path + " is " + describe(meta) + ", this run trains " +
                     describe(wanted) +
                     "; give a model trained with the same architecture, input size and features");
  deserialize_module(net, parts.payload, path);
  spdlog::info("starting from the weights of {}", path);
}

// model.second_backbone's weights sit beside model.pretrained's, as `make
// pretrained` leaves them: data/pretrained/efficientnet-liteN.
SecondBackbone second_backbone(const TrainParams& p) {
  if (p.second_backbone.empty()) return {};
  std::filesystem::path first(p.pretrained);
  if (!first.has_filename()) first = first.parent_path();  // a trailing slash
  std::string dir = (first.parent_path() / p.second_backbone).string();
  if (!std::filesystem::is_directory(dir))
    throw UsageError("model.second_backbone " + p.second_backbone + " needs its weights in " + dir +
                     " (beside model.pretrained); run `make pretrained`");
  return {dir, p.second_backbone,
          p.second_backbone_size > 0 ? p.second_backbone_size : p.input_size};
}

}  // namespace

Network initial_network(const TrainParams& p, ModelMeta& meta) {
  const bool lite = is_efficientnet_lite(p.architecture);
  if (p.second_input_size > 0 && !lite)
    throw UsageError("model.second_input_size is for efficientnet-lite; set it to 0 for " +
                     p.architecture);
  if (!p.second_backbone.empty() && !(lite && is_efficientnet_lite(p.second_backbone)))
    throw UsageError(
        "model.second_backbone " + p.second_backbone +
        " must be efficientnet-lite0|1|2 beside an efficientnet-lite model.architecture"
        " (this one is " +
        p.architecture + "); set it to \"\" for one backbone");
  if (!p.init.empty() && p.mode == TrainMode::k_frozen)
    throw UsageError(
        "model.init is for mode full or finetune; a frozen run fits its head from "
        "scratch on cached features (set model.init to \"\")");
  Network net;
  if (p.architecture == "darknet" || lite) {
    if (p.pretrained.empty())
      throw UsageError("architecture " + p.architecture +
                       " needs model.pretrained: the Tiny Darknet TF.js folder, or "
                       "data/pretrained/efficientnet-liteN from `dvc repro pretrained`");
    std::vector<int> scales;
    if (p.second_input_size > 0) scales.push_back(p.second_input_size);
    PretrainedImport imported =
        lite ? import_efficientnet_lite(p.pretrained, p.architecture, p.features, scales,
                                        second_backbone(p))
             : import_tfjs_darknet(p.pretrained, p.features);
    meta.arch_params = imported.params;
    net = build_network(p.architecture, p.input_size, meta.arch_params);
    // With model.init the import gives the topology only; the weights come from the model.
    if (p.init.empty()) deserialize_module(*net, imported.weights, p.pretrained);
  } else {
    if (p.mode != TrainMode::k_full)
      throw UsageError(
          "model.mode " + to_string(p.mode) +
          " needs a pretrained backbone; use architecture darknet or efficientnet-liteN");
    net = build_network(p.architecture, p.input_size, meta.arch_params);
  }
  if (!p.init.empty()) start_from(p.init, meta, *net);
  if (p.mode == TrainMode::k_finetune && p.finetune_stages > 0)
    net->freeze_all_but_last_stages(p.finetune_stages);
  if (p.keep_bn_statistics) net->keep_bn_statistics();
  return net;
}

}  // namespace cd
