#include <catch2/catch.hpp>

#include "domain/labels.h"

TEST_CASE("decide: dog at or above the threshold, confidence of the chosen label", "[labels]") {
  cd::Decision d = cd::decide(0.7, 0.5);
  CHECK(d.label == cd::Label::k_dog);
  CHECK(d.name() == "dog");
  CHECK(d.confidence == Approx(0.7));
  d = cd::decide(0.2, 0.5);
  CHECK(d.name() == "cat");
  CHECK(d.confidence == Approx(0.8));
  CHECK(cd::decide(0.5, 0.5).name() == "dog");   // the threshold itself is dog
  CHECK(cd::decide(0.6, 0.65).name() == "cat");  // the model's own threshold counts
}

TEST_CASE("class names and their spellings in folders and file names", "[labels]") {
  CHECK(cd::class_names() == std::vector<std::string>{"cat", "dog"});
  CHECK(cd::label_from_name("Cats") == 0);
  CHECK(cd::label_from_name("DOG") == 1);
  CHECK(cd::label_from_name("dogs") == 1);
  CHECK(cd::label_from_name("horse") == -1);
  CHECK(std::string(cd::k_default_model_path) == "models/model.cdm");
}
