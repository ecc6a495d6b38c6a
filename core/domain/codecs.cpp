#include "domain/codecs.h"

// jpeglib.h needs FILE and size_t declared before it.
#include <cstdio>
#include <ctime>

#include <jpeglib.h>
#include <png.h>
#include <webp/decode.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "util/atomic_file.h"
#include "util/errors.h"

namespace cd::codecs {

namespace {

// Visits each marker segment of a JPEG up to its first scan's header (SOS,
// the last one visited), as visit(marker, pos, length) with pos at the
// segment's 0xFF; a true return ends the walk. Fill bytes and the markers that carry no length are
// skipped.
template <class Visit>
void walk_jpeg_segments(std::string_view b, Visit visit) {
  std::size_t pos = 2;  // after SOI
  while (pos + 4 <= b.size()) {
    if (byte_at(b, pos) != 0xFF) return;
    std::uint32_t marker = byte_at(b, pos + 1);
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {
      pos += 2;
      continue;
    }
    std::uint32_t length = be16(b, pos + 2);
    if (marker == 0xD9 || length < 2) return;  // the end, or nonsense
    if (visit(marker, pos, length) || marker == 0xDA) return;
    pos += 2 + length;
  }
}

// Adobe's CMYK JPEGs store inverted ink, so each channel is the product of
// its own value and K's, scaled back to 8 bits.
void inverted_cmyk_to_rgb(const unsigned char* in, unsigned char* out, int width) {
  for (int x = 0; x < width; ++x, in += 4, out += 3) {
    int k = in[3];
    for (int ch = 0; ch < 3; ++ch)
      out[ch] = static_cast<unsigned char>(k - ((255 - in[ch]) * k >> 8));
  }
}

// libjpeg's state for one decode. Its error hook, and its progress hook when
// the work goes over budget, longjmp back to decode_jpeg with the reason;
// everything that frame touches afterwards lives here, in memory.
struct JpegDecoder {
  jpeg_decompress_struct info{};
  jpeg_error_mgr errors{};
  jpeg_progress_mgr progress{};
  std::jmp_buf jump{};
  const DecodeWork* work = nullptr;
  std::string why;
  bool over_budget = false, created = false;
  RgbImage out;
  std::vector<unsigned char> cmyk;  // a CMYK file's rows before conversion
  ~JpegDecoder() {
    if (created) jpeg_destroy_decompress(&info);
  }
  static JpegDecoder& of(j_common_ptr info) {
    return *static_cast<JpegDecoder*>(info->client_data);
  }
  // Back to decode_jpeg with `why` set. The frames in between (libjpeg's,
  // and the hook's) hold nothing that needs destroying.
  [[noreturn]] void stop(bool budget) {
    over_budget = budget;
    std::longjmp(jump, 1);
  }
};

// Only 1/2, 1/4 and 1/8: libjpeg-turbo has SIMD inverse DCTs for those, while
// its other n/8 scales run plain C and can cost more than a full-size decode.
// Returns the denominator; a side scales to ceil(side / denominator).
int smallest_scale_keeping(long width, long height, int min_side) {
  int best = 1;
  if (min_side <= 0) return best;
  for (int denom : {2, 4, 8}) {
    if ((width + denom - 1) / denom < min_side || (height + denom - 1) / denom < min_side) break;
    best = denom;
  }
  return best;
}

// libpng's state for one decode: everything setjmp's frame touches lives
// here, in memory.
struct PngSource {
  std::string_view bytes;
  const DecodeWork* work = nullptr;
  std::size_t pos = 0;
  std::string error;
  bool over_budget = false;
  RgbImage rgb;
  std::vector<png_bytep> rows;
  unsigned reads = 0;
};

// png_error longjmps, so no local may need destroying: the reason goes
// into the source first, and the error hook leaves it there.
void check_png_budget(png_structp p) {
  auto* s = static_cast<PngSource*>(png_get_io_ptr(p));
  if (!s->work->over_time()) return;
  s->over_budget = true;
  s->error = s->work->time_message();
  png_error(p, "over the decoding budget");
}

// This thread's CPU time in seconds.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

DecodeWork::DecodeWork()
    : m_start(thread_cpu_seconds()),
      m_limit(input_budget().max_decode_seconds),
      m_max_scans(input_budget().max_jpeg_scans) {}

bool DecodeWork::over_time() const { return thread_cpu_seconds() - m_start > m_limit; }

bool DecodeWork::over_scans(int scans) const { return scans > m_max_scans; }

std::string DecodeWork::time_message() const {
  char limit[32];
  std::snprintf(limit, sizeof limit, "%g", m_limit);
  return std::string("decoding took more than ") + limit +
         " s of CPU, the budget per image (--max-decode-seconds raises it)";
}

std::string DecodeWork::scans_message() const {
  return "the progressive JPEG has more than " + std::to_string(m_max_scans) +
         " scans, the budget per image (photos have about 10; --max-jpeg-scans raises it)";
}

void DecodeWork::check() const {
  if (over_time()) throw CostError(time_message());
}

int jpeg_buffered_components(std::string_view b) {
  bool progressive = false;
  std::uint32_t in_frame = 0, in_first_scan = 0;
  walk_jpeg_segments(b, [&](std::uint32_t marker, std::size_t pos, std::uint32_t) {
    bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof && pos + 10 <= b.size()) {
      progressive = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE;
      in_frame = byte_at(b, pos + 9);
    }
    if (marker == 0xDA && pos + 5 <= b.size()) in_first_scan = byte_at(b, pos + 4);
    return false;
  });
  // libjpeg keeps every coefficient of the image when the frame is
  // progressive, or when its first scan does not carry every component.
  if (progressive || in_first_scan < in_frame) return static_cast<int>(std::max(in_frame, 1u));
  return 0;
}

std::uint64_t decode_memory_estimate(std::string_view bytes, const std::string& format,
                                     std::uint32_t width, std::uint32_t height, int min_side) {
  std::uint64_t pixels = std::uint64_t{width} * height;
  if (format == "jpeg") {
    std::uint64_t denom =
        static_cast<std::uint64_t>(smallest_scale_keeping(width, height, min_side));
    std::uint64_t out = ((width + denom - 1) / denom) * ((height + denom - 1) / denom) * 4;
    // a whole-image coefficient buffer: two bytes per coefficient, every
    // component at full size at worst
    return out + pixels * 2 * static_cast<std::uint64_t>(jpeg_buffered_components(bytes));
  }
  if (format == "webp") return pixels * 7;
  return pixels * 3;
}

std::optional<Size2> jpeg_size(std::string_view b) {
  std::optional<Size2> size;
  walk_jpeg_segments(b, [&](std::uint32_t marker, std::size_t pos, std::uint32_t) {
    bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (!sof) return false;
    if (pos + 9 <= b.size()) size = Size2{be16(b, pos + 7), be16(b, pos + 5)};
    return true;
  });
  return size;
}

int exif_orientation(std::string_view b) {
  int orientation = 1;
  // APP1 "Exif\0\0", a TIFF header, then IFD0's Orientation tag (0x0112).
  walk_jpeg_segments(b, [&](std::uint32_t marker, std::size_t pos, std::uint32_t length) {
    if (pos + 2 + length > b.size()) return true;
    if (marker != 0xE1 || length <= 16 || b.substr(pos + 4, 6) != std::string_view("Exif\0\0", 6))
      return false;
    std::string_view tiff = b.substr(pos + 10, length - 8);
    bool little = tiff.substr(0, 2) == "II";
    auto u16 = [&](std::size_t at) { return little ? le16(tiff, at) : be16(tiff, at); };
    std::size_t ifd = little ? le32(tiff, 4) : be32(tiff, 4);
    if (ifd + 2 > tiff.size()) return true;
    std::size_t entries = u16(ifd);
    for (std::size_t i = 0; i < entries && ifd + 2 + 12 * (i + 1) <= tiff.size(); ++i) {
      std::size_t entry = ifd + 2 + 12 * i;
      if (u16(entry) != 0x0112) continue;
      std::uint32_t value = u16(entry + 8);
      if (value >= 1 && value <= 8) orientation = static_cast<int>(value);
      break;
    }
    return true;
  });
  return orientation;
}

RgbImage decode_jpeg(std::string_view bytes, int min_side, const DecodeWork& work) {
  JpegDecoder d;
  d.work = &work;
  d.info.err = jpeg_std_error(&d.errors);
  d.errors.error_exit = [](j_common_ptr info) {
    char message[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, message);
    JpegDecoder::of(info).why = message;
    JpegDecoder::of(info).stop(false);
  };
  // Warnings ("Corrupt JPEG data", a bogus progression) stay off stderr, and
  // the data decoded is kept: the budgets bound what they can cost.
  d.errors.output_message = [](j_common_ptr) {};
  // Called once per iMCU row of every scan while the input is read, and per
  // call for output rows: the place to count scans and CPU.
  d.progress.progress_monitor = [](j_common_ptr info) {
    JpegDecoder& self = JpegDecoder::of(info);
    auto* in = reinterpret_cast<j_decompress_ptr>(info);
    if (self.work->over_scans(in->input_scan_number)) {
      self.why = self.work->scans_message();
      self.stop(true);
    }
    if (self.work->over_time()) {
      self.why = self.work->time_message();
      self.stop(true);
    }
  };
  if (setjmp(d.jump)) {
    if (d.over_budget) throw CostError(d.why);
    throw DataError("not a decodable JPEG (" + d.why + ")");
  }
  d.info.client_data = &d;  // kept by jpeg_create_decompress, which the error hook needs
  jpeg_create_decompress(&d.info);
  d.created = true;
  d.info.progress = &d.progress;
  jpeg_mem_src(&d.info, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&d.info, TRUE);
  bool cmyk = d.info.jpeg_color_space == JCS_CMYK || d.info.jpeg_color_space == JCS_YCCK;
  // The accurate integer IDCT and smooth chroma upsampling: at full scale the
  // pixels are those OpenCV's reader gives.
  d.info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  d.info.dct_method = JDCT_ISLOW;
  d.info.do_fancy_upsampling = TRUE;
  d.info.scale_num = 1;
  d.info.scale_denom = static_cast<unsigned>(
      smallest_scale_keeping(d.info.image_width, d.info.image_height, min_side));
  jpeg_start_decompress(&d.info);  // a progressive file's scans are all read here
  const int width = static_cast<int>(d.info.output_width);
  d.out = RgbImage(width, static_cast<int>(d.info.output_height));
  if (cmyk) d.cmyk.resize(16 * 4 * static_cast<std::size_t>(width));
  while (d.info.output_scanline < d.info.output_height) {
    JSAMPROW rows[16];
    JDIMENSION first = d.info.output_scanline;
    JDIMENSION count = std::min<JDIMENSION>(16, d.info.output_height - first);
    for (JDIMENSION i = 0; i < count; ++i)
      rows[i] = cmyk ? d.cmyk.data() + 4 * static_cast<std::size_t>(width) * i
                     : d.out.row(static_cast<int>(first + i));
    JDIMENSION read = jpeg_read_scanlines(&d.info, rows, count);
    if (cmyk)
      for (JDIMENSION i = 0; i < read; ++i)
        inverted_cmyk_to_rgb(rows[i], d.out.row(static_cast<int>(first + i)), width);
    if (read == 0) break;  // input cut short
  }
  return reoriented(std::move(d.out), exif_orientation(bytes));
}

RgbImage decode_png(std::string_view bytes, const DecodeWork& work) {
  PngSource src{bytes, &work};
  png_structp png = png_create_read_struct(
      PNG_LIBPNG_VER_STRING, &src,
      [](png_structp p, png_const_charp message) {
        auto* s = static_cast<PngSource*>(png_get_error_ptr(p));
        if (!s->over_budget) s->error = message;
        png_longjmp(p, 1);
      },
      [](png_structp, png_const_charp) {});  // warnings (a bad ancillary CRC): decoded anyway
  if (!png) throw DataError("cannot start the PNG decoder");
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    if (src.over_budget) throw CostError(src.error);
    throw DataError("not a decodable PNG (" + src.error + ")");
  }
  // The budget is asked every few reads (a flood of small chunks) and after
  // every row of every interlace pass (inflation and filters).
  png_set_read_fn(png, &src, [](png_structp p, png_bytep out, png_size_t n) {
    auto* s = static_cast<PngSource*>(png_get_io_ptr(p));
    if (s->bytes.size() - s->pos < n) png_error(p, "file is cut short");
    std::memcpy(out, s->bytes.data() + s->pos, n);
    s->pos += n;
    if (++s->reads % 64 == 0) check_png_budget(p);
  });
  png_set_read_status_fn(png, [](png_structp p, png_uint_32, int) { check_png_budget(p); });
  // Text, ICC profiles and the like are never used: skipped unread, with
  // libpng's caps on what any chunk left may allocate.
  static const png_byte k_skipped[] = "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf\0";
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, 0);
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, k_skipped, 6);
  png_set_chunk_cache_max(png, 256);
  png_set_chunk_malloc_max(png, 8 << 20);
  png_read_info(png, info);
  png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
  int color = png_get_color_type(png, info);
  png_set_strip_16(png);
  png_set_expand(png);  // palette to RGB, gray below 8 bits to 8, tRNS to alpha
  png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8)
    png_error(png, "unexpected pixel layout after conversion");
  src.rgb = RgbImage(static_cast<int>(width), static_cast<int>(height));
  src.rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) src.rows[y] = src.rgb.row(static_cast<int>(y));
  png_read_image(png, src.rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
  return std::move(src.rgb);
}

RgbImage decode_webp(std::string_view bytes, const DecodeWork& work) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  int width = 0, height = 0;
  if (!WebPGetInfo(data, bytes.size(), &width, &height) || width <= 0 || height <= 0)
    throw DataError("not a decodable WebP (bad bitstream header)");
  RgbImage rgb(width, height);
  struct Decoder {
    WebPIDecoder* d;
    ~Decoder() {
      if (d) WebPIDelete(d);
    }
  } dec{WebPINewRGB(MODE_RGB, rgb.data(), rgb.size_bytes(), static_cast<int>(rgb.stride()))};
  if (!dec.d) throw DataError("cannot start the WebP decoder");
  // The bytes are offered a slice more at a time, in place (no copy), so the
  // budget is asked between slices.
  constexpr std::size_t k_slice = 64 << 10;
  VP8StatusCode status = VP8_STATUS_SUSPENDED;
  for (std::size_t fed = 0; fed < bytes.size() && status == VP8_STATUS_SUSPENDED;) {
    fed = std::min(bytes.size(), fed + k_slice);
    status = WebPIUpdate(dec.d, data, fed);
    work.check();
  }
  if (status == VP8_STATUS_UNSUPPORTED_FEATURE)
    throw DataError("not a decodable WebP (an animation, or a feature libwebp lacks)");
  if (status == VP8_STATUS_SUSPENDED) throw DataError("not a decodable WebP (file is cut short)");
  if (status != VP8_STATUS_OK) throw DataError("not a decodable WebP (corrupt data)");
  return rgb;
}

}  // namespace cd::codecs
