#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cd-train/mlflow.h"
#include "helpers.h"
#include "util/atomic_file.h"

using json = nlohmann::json;

namespace {

struct Call {
  std::string method, path, body, query_name;
};

// An MLflow stand-in on loopback that answers like the real REST API and
// records every call, under a path prefix as behind a reverse proxy.
class StubMlflow {
 public:
  explicit StubMlflow(bool fail_run_create = false) {
    const std::string api = "/prefix/api/2.0/mlflow";
    m_server.Get(api + "/experiments/get-by-name", [this](const httplib::Request& req,
                                                          httplib::Response& res) {
      record(req, req.get_param_value("experiment_name"));
      res.status = 404;
      res.set_content(R"({"error_code":"RESOURCE_DOES_NOT_EXIST"})", "application/json");
    });
    m_server.Post(api + "/experiments/create",
                  [this](const httplib::Request& req, httplib::Response& res) {
                    record(req);
                    res.set_content(R"({"experiment_id":"7"})", "application/json");
                  });
    m_server.Post(api + "/runs/create", [this, fail_run_create](const httplib::Request& req,
                                                                httplib::Response& res) {
      record(req);
      if (fail_run_create) {
        res.status = 500;
        return;
      }
      res.set_content(
          R"({"run":{"info":{"run_id":"r1","artifact_uri":"mlflow-artifacts:/7/r1/artifacts"}}})",
          "application/json");
    });
    for (const char* route : {"/runs/log-batch", "/runs/update"})
      m_server.Post(api + route, [this](const httplib::Request& req, httplib::Response& res) {
        record(req);
        res.set_content("{}", "application/json");
      });
    m_server.Put(R"(/prefix/api/2.0/mlflow-artifacts/artifacts/.*)",
                 [this](const httplib::Request& req, httplib::Response&) { record(req); });
    m_port = m_server.bind_to_any_port("127.0.0.1");
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
    while (!m_server.is_running()) std::this_thread::yield();
  }
  ~StubMlflow() {
    m_server.stop();
    m_thread.join();
  }
  std::string uri() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/prefix/"; }
  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_calls;
  }

 private:
  void record(const httplib::Request& req, std::string query_name = "") {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_calls.push_back({req.method, req.path, req.body, std::move(query_name)});
  }

  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
  std::mutex m_mutex;
  std::vector<Call> m_calls;
};

cd::Settings many_settings(int n) {
  cd::Settings s;
  for (int i = 0; i < n; ++i) s.emplace_back("section.key" + std::to_string(i), std::to_string(i));
  return s;
}

}  // namespace

TEST_CASE("the MLflow observer logs a whole run through the REST API", "[mlflow]") {
  StubMlflow stub;
  cd::test::TempDir dir;
  cd::write_file_atomic(dir.file("model.cdm"), "weights");
  auto observer = cd::make_mlflow_observer(stub.uri(), "cat dog&co", many_settings(150));
  REQUIRE(observer);
  observer->on_start(
      {{{"train_images", "320"}}, {{"git_commit", "abc"}, {"data_fingerprint", "f00d"}}});
  cd::EpochRecord epoch{/*epoch=*/2, 1.0e12, 0.5, 0.75, 0.4, 0.8, 0.001, 3.0};
  observer->on_epoch(epoch, {epoch});
  cd::TrainSummary summary;
  summary.model_path = dir.file("model.cdm");
  observer->on_finish(&summary);

  auto calls = stub.calls();
  REQUIRE(calls.size() == 8);
  CHECK(calls[0].path == "/prefix/api/2.0/mlflow/experiments/get-by-name");
  CHECK(calls[0].query_name == "cat dog&co");  // escaped on the way, intact on arrival
  CHECK(json::parse(calls[1].body)["name"] == "cat dog&co");
  json run = json::parse(calls[2].body);
  CHECK(run["experiment_id"] == "7");
  CHECK(run["tags"].dump().find(R"({"key":"data_fingerprint","value":"f00d"})") !=
        std::string::npos);
  // Every setting is a param, 100 per call (MLflow's limit), plus the run's own facts.
  json first = json::parse(calls[3].body), second = json::parse(calls[4].body);
  CHECK(first["run_id"] == "r1");
  CHECK(first["params"].size() == 100);
  CHECK(second["params"].size() == 51);
  CHECK(first["params"][0] == json{{"key", "section.key0"}, {"value", "0"}});
  CHECK(second["params"].back() == json{{"key", "train_images"}, {"value", "320"}});
  json metrics = json::parse(calls[5].body)["metrics"];
  REQUIRE(metrics.size() == 5);
  for (const auto& m : metrics) CHECK(m["step"] == 1);  // epoch 2 is step 1
  CHECK(metrics.dump().find(R"("key":"val_accuracy")") != std::string::npos);
  CHECK(calls[6].method == "PUT");
  CHECK(calls[6].path ==
        "/prefix/api/2.0/mlflow-artifacts/artifacts/7/r1/artifacts/model/model.cdm");
  CHECK(calls[6].body == "weights");
  json update = json::parse(calls[7].body);
  CHECK(update["status"] == "FINISHED");
}

TEST_CASE("a failed run is reported FAILED without an artifact", "[mlflow]") {
  StubMlflow stub;
  auto observer = cd::make_mlflow_observer(stub.uri(), "e", {});
  observer->on_start({});
  observer->on_finish(nullptr);
  auto calls = stub.calls();
  REQUIRE_FALSE(calls.empty());
  CHECK(calls.back().path.find("/runs/update") != std::string::npos);
  CHECK(json::parse(calls.back().body)["status"] == "FAILED");
  for (const auto& c : calls) CHECK(c.method != "PUT");
}

TEST_CASE("a server error turns tracking off after one try, without throwing", "[mlflow]") {
  StubMlflow stub(/*fail_run_create=*/true);
  auto observer = cd::make_mlflow_observer(stub.uri(), "e", many_settings(3));
  CHECK_NOTHROW(observer->on_start({}));
  cd::EpochRecord epoch;
  CHECK_NOTHROW(observer->on_epoch(epoch, {epoch}));
  CHECK_NOTHROW(observer->on_finish(nullptr));
  auto calls = stub.calls();
  REQUIRE(calls.size() == 3);  // get-by-name, create, runs/create; then silence
  CHECK(calls.back().path.find("/runs/create") != std::string::npos);
}

TEST_CASE("an unreachable server costs nothing but a warning", "[mlflow]") {
  // A port that was free a moment ago and that nothing listens on.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  auto observer = cd::make_mlflow_observer("http://127.0.0.1:" + std::to_string(port), "e", {});
  REQUIRE(observer);
  CHECK_NOTHROW(observer->on_start({}));
  CHECK_NOTHROW(observer->on_finish(nullptr));
}

TEST_CASE("only http(s) tracking URIs make an observer", "[mlflow]") {
  CHECK_FALSE(cd::make_mlflow_observer("file:///tmp/mlruns", "e", {}));
  CHECK_FALSE(cd::make_mlflow_observer("databricks", "e", {}));
  CHECK(cd::make_mlflow_observer("https://mlflow.example", "e", {}));
}
