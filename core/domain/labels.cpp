#include "domain/labels.h"

#include "util/strings.h"

namespace cd {

const std::vector<std::string>& class_names() {
  static const std::vector<std::string> k_names{"cat", "dog"};
  return k_names;
}

const std::string& label_name(Label label) { return class_names()[static_cast<int>(label)]; }

int label_from_name(std::string_view name) {
  std::string n = to_lower(name);
  if (n == "cat" || n == "cats") return static_cast<int>(Label::k_cat);
  if (n == "dog" || n == "dogs") return static_cast<int>(Label::k_dog);
  return -1;
}

Decision decide(double p_dog, double threshold) {
  bool dog = p_dog >= threshold;
  return {dog ? Label::k_dog : Label::k_cat, dog ? p_dog : 1 - p_dog};
}

}  // namespace cd
