// A faster depthwise convolution for OpenCV's DNN module. OpenCV 4.6 has a
// fast path for 3x3 depthwise kernels only; EfficientNet-Lite's 5x5 ones
// fall to its general convolution and ran at 1.6 GMAC/s: 31 of the 60 ms of
// a Lite2 forward pass on 2 cores, 9 ms here. It stands in for OpenCV's
// "Convolution" layer while our networks are read, takes the depthwise
// layers (square kernels of 3 and more, no dilation) and hands every other
// convolution back to OpenCV's own implementation.
#pragma once

#include <cstddef>

#include <opencv2/dnn/dnn.hpp>

namespace cd {

// readNetFromONNX with the depthwise layer in place; any other reader in the
// process keeps OpenCV's own. Throws cv::Exception as OpenCV does.
cv::dnn::Net read_onnx_with_fast_depthwise(const char* data, std::size_t size);

}  // namespace cd
