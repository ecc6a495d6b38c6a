#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/errors.h"

namespace cd {

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    throw IoError("cannot open '" + path +
                  "': " + (fd < 0 ? std::strerror(err) : "not a regular file"));
  }
  m_size = static_cast<std::size_t>(st.st_size);
  if (m_size > 0) {
    m_data = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (m_data == MAP_FAILED) m_data = nullptr;
  }
  int err = errno;
  ::close(fd);
  if (m_size > 0 && !m_data) throw IoError("cannot map '" + path + "': " + std::strerror(err));
}

MappedFile::~MappedFile() {
  if (m_data) ::munmap(m_data, m_size);
}

}  // namespace cd
