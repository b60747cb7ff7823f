// A 2-D Winograd convolution laid out as square output tiles, shared by F(4x4, 3x3) and
// F(2x2, 5x5) (winograd.cpp) and F(6x6, 3x3) (winograd_f6.cpp).
#pragma once

#include <cstdint>

namespace winograd {

// Input [N, H, W, Cin] (NHWC, consecutive pixels `pixel` floats apart: Cin, or more for a channel
// slice) -> output [N, Ho, Wo, Cout], in tiles of tile x tile outputs.
struct Geometry {
  int64_t n, h, w, cin, cout, pad_h, pad_w;
  int64_t tile = 4, kernel = 3, pixel = 0;
  int64_t x_pixel() const { return pixel ? pixel : cin; }
  int64_t out_h() const { return h + 2 * pad_h - kernel + 1; }
  int64_t out_w() const { return w + 2 * pad_w - kernel + 1; }
  int64_t tiles_h() const { return (out_h() + tile - 1) / tile; }
  int64_t tiles_w() const { return (out_w() + tile - 1) / tile; }
  int64_t tiles() const { return n * tiles_h() * tiles_w(); }
};

struct TileOrigin {
  int64_t n, y, x;  // batch index and top-left input coordinate (may be negative: padding)
};

inline TileOrigin tile_origin(const Geometry& g, int64_t t) {
  const int64_t per_image = g.tiles_h() * g.tiles_w();
  const int64_t n = t / per_image, r = t % per_image;
  return {n, (r / g.tiles_w()) * g.tile - g.pad_h, (r % g.tiles_w()) * g.tile - g.pad_w};
}

}  // namespace winograd
