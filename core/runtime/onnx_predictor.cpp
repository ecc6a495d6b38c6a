// .onnx models (cd-export's) on OpenCV's DNN module: no LibTorch involved.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>

#include "runtime/depthwise_conv.h"
#include "runtime/predictor.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace cd {

namespace {

// Protobuf's wire format, as much as reading ModelProto's metadata_props
// (field 14: StringStringEntryProto {1: key, 2: value}) takes.
struct Wire {
  std::string_view bytes;
  std::size_t pos = 0;

  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && pos < bytes.size(); shift += 7) {
      auto b = static_cast<unsigned char>(bytes[pos++]);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // The next field: its number, and for length-delimited ones the payload.
  bool next(std::uint64_t& field, std::string_view& payload) {
    std::uint64_t key, n;
    payload = {};
    if (pos >= bytes.size() || !varint(key)) return false;
    field = key >> 3;
    switch (key & 7) {
      case 0:
        return varint(n);
      case 1:
        pos += 8;
        break;
      case 2:
        if (!varint(n) || n > bytes.size() - pos) return false;
        payload = bytes.substr(pos, n);
        pos += n;
        return true;
      case 5:
        pos += 4;
        break;
      default:
        return false;
    }
    return pos <= bytes.size();
  }
};

// A model file mapped read-only for the time it takes to parse it.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) ::close(fd);
      throw ModelError("cannot open '" + path +
                       "': " + (fd < 0 ? std::strerror(errno) : "not a regular file"));
    }
    m_size = static_cast<std::size_t>(st.st_size);
    if (m_size > 0) {
      m_data = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (m_data == MAP_FAILED) m_data = nullptr;
    }
    int err = errno;
    ::close(fd);
    if (m_size > 0 && !m_data) throw ModelError("cannot map '" + path + "': " + std::strerror(err));
  }
  ~MappedFile() {
    if (m_data) ::munmap(m_data, m_size);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {static_cast<const char*>(m_data), m_size}; }

 private:
  void* m_data = nullptr;
  std::size_t m_size = 0;
};

class OnnxPredictor : public Predictor {
 public:
  OnnxPredictor(ModelMeta meta, cv::dnn::Net net, int threads)
      : m_meta(std::move(meta)), m_net(std::move(net)), m_threads(threads) {}

  const ModelMeta& meta() const override { return m_meta; }
  std::string runtime() const override { return "opencv-dnn"; }

  void set_tta_flip(bool on) override {
    if (on != m_meta.tta_flip)
      throw UsageError(
          std::string("test-time flip is fixed inside an exported .onnx file (it is ") +
          (m_meta.tta_flip ? "on" : "off") +
          " here); export again from a model file with the setting you want");
  }

  std::vector<float> predict(const float* images, std::size_t n) override {
    if (m_threads > 0) cv::setNumThreads(m_threads);
    int size = m_meta.preprocess.size;
    int dims[4] = {static_cast<int>(n), 3, size, size};
    cv::Mat blob(4, dims, CV_32F, const_cast<float*>(images));
    cv::Mat out;
    try {
      m_net.setInput(blob, "input");
      out = m_net.forward("p_dog");
    } catch (const cv::Exception& e) {
      throw ModelError(std::string("the ONNX model failed to run: ") + e.what());
    }
    if (out.total() != n) throw ModelError("the ONNX model gave a wrong number of answers");
    std::vector<float> p(out.ptr<float>(), out.ptr<float>() + n);
    for (float v : p)
      if (!std::isfinite(v))
        throw ModelError("the ONNX model produced a non-finite probability; the file is corrupt");
    return p;
  }

 private:
  ModelMeta m_meta;
  cv::dnn::Net m_net;
  int m_threads;
};

}  // namespace

ModelMeta read_onnx_meta(std::string_view bytes, const std::string& origin) {
  Wire model{bytes};
  std::uint64_t field;
  std::string_view payload;
  while (model.next(field, payload)) {
    if (field != 14) continue;
    Wire entry{payload};
    std::string_view key, value, part;
    std::uint64_t f;
    while (entry.next(f, part)) {
      if (f == 1) key = part;
      if (f == 2) value = part;
    }
    if (key != "catdog.meta") continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(value);
    } catch (const std::exception&) {
      throw ModelError(origin + ": its catdog.meta is not valid JSON; export it again");
    }
    return meta_from_json(j, origin);
  }
  throw ModelError(origin +
                   ": not an ONNX file from cd-export (no catdog.meta in "
                   "metadata_props); export it with cd-export");
}

std::unique_ptr<Predictor> open_onnx_predictor(const std::string& path, int threads) {
  // Mapped, not read: the bytes are parsed once, straight from the page cache.
  MappedFile file(path);
  std::string_view bytes = file.bytes();
  ModelMeta meta = read_onnx_meta(bytes, path);
  cv::dnn::Net net;
  try {
    net = read_onnx_with_fast_depthwise(bytes.data(), bytes.size());
  } catch (const cv::Exception& e) {
    throw ModelError(path + ": OpenCV cannot read this ONNX file: " + e.what());
  }
  if (net.empty()) throw ModelError(path + ": OpenCV read an empty network from this ONNX file");
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  return std::make_unique<OnnxPredictor>(std::move(meta), std::move(net), threads);
}

}  // namespace cd
