// The network a training run starts from: a fresh one for baseline and
// compact; for darknet and efficientnet-liteN the pretrained backbone with a
// zeroed cat/dog head, or (model.init) the weights of a model trained before;
// with model.finetune_stages only the last stages learn.
#pragma once

#include "cd-train/train.h"
#include "domain/model_file.h"
#include "nn/nets.h"

namespace cd {

// meta holds the run's architecture and preprocessing; this fills in its
// topology (arch_params). Throws UsageError for settings that do not fit.
Network initial_network(const TrainParams& p, ModelMeta& meta);

}  // namespace cd
