// The two classes and the one rule that turns P(dog) into an answer, shared
// by cd-predict, cd-serve and cd-eval so they can never disagree; plus the
// default model path every tool that reads a model falls back to.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cd {

enum class Label : int { k_cat = 0, k_dog = 1 };  // dog is the positive class

inline constexpr const char* k_default_model_path = "models/model.cdm";

// {"cat", "dog"}: index i names Label(i).
const std::vector<std::string>& class_names();
const std::string& label_name(Label label);

// "cat", "cats", "dog" or "dogs" in any case (file-name prefixes and class
// folders); -1 for anything else.
int label_from_name(std::string_view name);

struct Decision {
  Label label = Label::k_cat;
  double confidence = 0;  // P(label): p_dog for dog, 1 - p_dog for cat
  const std::string& name() const { return label_name(label); }
};

// Dog when p_dog >= threshold.
Decision decide(double p_dog, double threshold);

}  // namespace cd
