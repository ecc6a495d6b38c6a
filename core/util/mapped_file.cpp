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
  // O_NONBLOCK: a FIFO given as a model is refused below instead of blocking
  // the open until some writer appears (as read_file does).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw IoError("cannot open '" + path + "': " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) throw IoError("'" + path + "' is a directory, not a file");
    throw IoError("'" + path + "' is not a regular file (a FIFO, device or socket); give a file");
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
