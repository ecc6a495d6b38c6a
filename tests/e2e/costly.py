"""Images within every byte and pixel budget that cost far more to decode than their size
says, built byte by byte (no imaging library), for the hardening suite and the fuzz seeds."""
import struct
import zlib


def _segment(marker, payload):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def _huffman_table(table_class, lengths_to_symbols):
    counts = bytearray(16)
    symbols = b""
    for length, syms in sorted(lengths_to_symbols.items()):
        counts[length - 1] = len(syms)
        symbols += bytes(syms)
    return _segment(0xC4, bytes([table_class << 4]) + bytes(counts) + symbols)


def _pack(bits):
    """Entropy-coded bytes: padded with ones, every 0xFF stuffed."""
    bits += "1" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00") if bits else b""


# The AC table: EOB14 (a run of 16,384 to 32,767 blocks) is '0'; EOB0..EOB13 are '10000' on.
_EOB_CODES = {14: "0", **{r: format(16 + r, "05b") for r in range(14)}}


def _end_of_band_runs(blocks):
    bits = ""
    while blocks:
        run = min(blocks, 32767)
        r = run.bit_length() - 1
        bits += _EOB_CODES[r] + (format(run - (1 << r), f"0{r}b") if r else "")
        blocks -= run
    return bits


def many_scans_jpeg(side=2048, scans=1000):
    """A grayscale progressive JPEG of side x side pixels (side a multiple of 8) whose AC scan
    is repeated `scans` times. For 2048 each copy is 18 bytes: one end-of-band run per 16,384
    blocks. The decoder warns about the bogus progression, yet walks every block in every copy."""
    assert side % 8 == 0
    blocks = (side // 8) ** 2
    out = b"\xff\xd8"
    out += _segment(0xDB, b"\x00" + b"\x01" * 64)  # quantisation table 0, all ones
    out += _segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + b"\x01\x11\x00")
    out += _huffman_table(0, {1: [0x00]})  # DC: category 0 is the code '0'
    out += _huffman_table(1, {1: [0xE0], 5: [r << 4 for r in range(14)]})
    out += _segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + _pack("0" * blocks)  # DC: all zero
    ac_scan = _segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + _pack(_end_of_band_runs(blocks))
    return out + ac_scan * scans + b"\xff\xd9"


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def flat_png(width, height, level=6):
    """A real width x height RGB PNG of one grey, a few hundred KB however many pixels."""
    row = b"\x00" + b"\x80" * (width * 3)
    stream = zlib.compressobj(level)
    data = b"".join(stream.compress(row) for _ in range(height)) + stream.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b""))
