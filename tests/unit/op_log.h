// Which ATen ops ran: a RecordFunction observer on this thread, for the tests
// that pin which path a computation takes (test_nets.cpp, test_onednn_lite.cpp).
#pragma once

#include <ATen/record_function.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace cd::test {

class OpLog {
 public:
  OpLog() {
    names().clear();
    m_handle = at::addThreadLocalCallback(
        at::RecordFunctionCallback([](const at::RecordFunction& fn)
                                       -> std::unique_ptr<at::ObserverContext> {
          names().emplace_back(fn.name());
          return nullptr;
        }).scopes({at::RecordScope::FUNCTION}));
  }
  ~OpLog() { at::removeCallback(m_handle); }
  OpLog(const OpLog&) = delete;
  OpLog& operator=(const OpLog&) = delete;

  bool ran(const std::string& op) const {
    return std::find(names().begin(), names().end(), op) != names().end();
  }
  long count(const std::string& op) const {
    return static_cast<long>(std::count(names().begin(), names().end(), op));
  }

 private:
  // The ops seen on this thread while an OpLog was alive.
  static std::vector<std::string>& names() {
    static thread_local std::vector<std::string> seen;
    return seen;
  }
  at::CallbackHandle m_handle;
};

}  // namespace cd::test
