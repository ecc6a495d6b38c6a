// cd-predict's command-line inputs: files, directories (expanded to their
// images, recursively and sorted) and "-" (one path per line from stdin).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "nn/batch_predict.h"

namespace cd {

// Problems (a missing path, an empty directory) become Predictions with an
// error, so they are reported in order with the rest.
std::vector<Prediction> expand_inputs(const std::vector<std::string>& args, std::istream& in);

}  // namespace cd
