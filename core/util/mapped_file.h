// A file mapped read-only (and populated at once, so its pages are in place
// before they are read): the model readers parse and use model files in
// place instead of copying tens of megabytes into fresh memory, which costs
// about 12 us per 4 KiB page in this kind of VM.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cd {

class MappedFile {
 public:
  // Throws IoError naming the path when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {static_cast<const char*>(m_data), m_size}; }

 private:
  void* m_data = nullptr;
  std::size_t m_size = 0;
};

}  // namespace cd
