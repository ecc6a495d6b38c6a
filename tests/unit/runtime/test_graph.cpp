#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "domain/model_file.h"
#include "runtime/graph.h"
#include "util/errors.h"

namespace {

cd::InferenceGraph small_graph() {
  cd::InferenceGraph g;
  g.weights["w"] = {{2, 3, 1, 1}, {1, 2, 3, 4, 5, 6}};
  g.weights["b"] = {{2}, {0.25f, -0.5f}};
  g.nodes.push_back(
      {"Conv", {"input", "w", "b"}, "c", {{"kernel_shape", {1, 1}}, {"group", {1}}}, {}});
  g.nodes.push_back({"Clip", {"c"}, "p_dog", {}, {{"min", 0.f}, {"max", 6.f}}});
  g.output = "p_dog";
  return g;
}

}  // namespace

TEST_CASE("an inference graph reads back as it was written", "[runtime]") {
  cd::InferenceGraph g = small_graph();
  std::string bytes = cd::write_graph(g);
  CHECK(bytes.rfind("catdog-graph 1\n", 0) == 0);
  cd::InferenceGraph back = cd::read_graph(bytes, "m.cdm");
  CHECK(back.input == "input");
  CHECK(back.output == "p_dog");
  REQUIRE(back.nodes.size() == 2);
  CHECK(back.nodes[0].op == "Conv");
  CHECK(back.nodes[0].inputs == std::vector<std::string>{"input", "w", "b"});
  CHECK(back.nodes[0].ints_attr("kernel_shape", {}) == std::vector<std::int64_t>{1, 1});
  CHECK(back.nodes[0].int_attr("group", 0) == 1);
  CHECK(back.nodes[0].int_attr("missing", 7) == 7);
  CHECK(back.nodes[1].float_attr("max", 0.f) == 6.f);
  CHECK(back.weights.at("w").dims == std::vector<std::int64_t>{2, 3, 1, 1});
  CHECK(back.weights.at("w").values == g.weights.at("w").values);
  CHECK(back.weights.at("b").values == g.weights.at("b").values);
}

TEST_CASE("a damaged inference graph is a ModelError that names the file", "[runtime]") {
  std::string bytes = cd::write_graph(small_graph());
  CHECK_THROWS_WITH(cd::read_graph("nonsense", "m.cdm"),
                    Catch::Contains("m.cdm") && Catch::Contains("magic"));
  CHECK_THROWS_WITH(cd::read_graph(bytes.substr(0, bytes.size() - 64), "m.cdm"),
                    Catch::Contains("truncated"));
  CHECK_THROWS_WITH(cd::read_graph(bytes.substr(0, 30), "m.cdm"), Catch::Contains("truncated"));

  cd::InferenceGraph nan = small_graph();
  nan.weights["b"].values[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(cd::read_graph(cd::write_graph(nan), "m.cdm"),
                    Catch::Contains("'b' holds NaN or Inf"));

  cd::InferenceGraph dangling = small_graph();
  dangling.nodes[1].inputs = {"nowhere"};
  CHECK_THROWS_WITH(cd::read_graph(cd::write_graph(dangling), "m.cdm"),
                    Catch::Contains("reads 'nowhere' before it is made"));

  cd::InferenceGraph no_output = small_graph();
  no_output.output = "elsewhere";
  CHECK_THROWS_WITH(cd::read_graph(cd::write_graph(no_output), "m.cdm"),
                    Catch::Contains("never computes its output"));

  std::string bad_json = bytes;
  bad_json[24] = '!';  // inside the JSON header
  CHECK_THROWS_AS(cd::read_graph(bad_json, "m.cdm"), cd::ModelError);
}

TEST_CASE("weights are read in place when the bytes' owner is given and they are aligned",
          "[runtime]") {
  cd::InferenceGraph g = small_graph();
  auto owner =
      std::make_shared<const std::string>(cd::write_graph(g));  // std::string: aligned data
  cd::InferenceGraph in_place = cd::read_graph(*owner, "m.cdm", owner);
  const cd::GraphWeight& w = in_place.weights.at("w");
  CHECK(w.values.empty());
  CHECK(w.borrowed >= reinterpret_cast<const float*>(owner->data()));
  CHECK(w.borrowed < reinterpret_cast<const float*>(owner->data() + owner->size()));
  CHECK(std::vector<float>(w.data(), w.data() + w.count()) == g.weights.at("w").values);
  CHECK(in_place.backing == owner);
  // Written again from borrowed weights, the bytes are the same.
  CHECK(cd::write_graph(in_place) == *owner);

  // Without an owner, or one byte off alignment, the values are copied.
  CHECK(cd::read_graph(*owner, "m.cdm").weights.at("w").borrowed == nullptr);
  auto shifted = std::make_shared<const std::string>(" " + *owner);
  cd::InferenceGraph copied =
      cd::read_graph(std::string_view(*shifted).substr(1), "m.cdm", shifted);
  CHECK(copied.weights.at("w").borrowed == nullptr);
  CHECK(copied.weights.at("w").values == g.weights.at("w").values);
}

TEST_CASE("a model file starts its graph on a 64-byte boundary, with the same metadata",
          "[runtime]") {
  std::string graph = cd::write_graph(small_graph());
  for (std::size_t payload : {0, 1, 7, 63, 100}) {
    nlohmann::json meta = {{"architecture", "compact"}, {"note", std::string(payload % 5, 'x')}};
    std::string bytes =
        cd::pack_file({cd::FileKind::k_model, meta, std::string(payload, 'p'), graph});
    cd::FilePartsView view = cd::unpack_view(bytes, "m.cdm");
    CHECK((view.graph.data() - bytes.data()) % 64 == 0);
    CHECK(view.graph == graph);
    CHECK(view.meta == meta);
    CHECK(view.payload == std::string(payload, 'p'));
  }
  // A checkpoint (no graph) is not padded.
  nlohmann::json meta = {{"k", 1}};
  std::string plain = cd::pack_file({cd::FileKind::k_checkpoint, meta, "abc", ""});
  CHECK(plain.find(meta.dump() + "  ") == std::string::npos);
}
