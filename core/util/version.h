// What this build is: catdog's version, the git commit it was built from
// (stamped at build time, not configure time), and the LibTorch version it
// was built against (a configure-time fact, so tools that do not link
// LibTorch can still report it).
#pragma once

#include <string>

namespace cd {

// The line printed by --version: tool, version, git commit, LibTorch.
std::string version_string(const std::string& tool);

// catdog's release, e.g. "0.3.0".
std::string catdog_version();

// `git describe --always --dirty` of the source tree at build time, or "unknown".
std::string git_commit();

}  // namespace cd
