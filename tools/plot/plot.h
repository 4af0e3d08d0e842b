// Tiny 2-D raster plotting helpers (RGB canvas, discs, scatter plots,
// trajectory strips, 5x7 bitmap text). Output is meant for encode_png_rgb().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace md::tools {

// Row-major, top-down RGB888 image; rgb.size() == w * h * 3.
struct Canvas {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;
};

// White canvas. Negative sizes are clamped to 0 (empty canvas).
Canvas make_canvas(int w, int h);

// Filled disc centered at (x, y), alpha-blended over the canvas
// (alpha clamped to [0, 1]). radius 0 draws a single pixel. Clipped.
void draw_point(Canvas& c, int x, int y, int radius, uint8_t r, uint8_t g, uint8_t b,
                float alpha);

// 1-px opaque outline of the rectangle with top-left (x, y) and size w x h. Clipped.
void draw_rect_outline(Canvas& c, int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b);

// Opaque filled rectangle, top-left (x, y), size w x h. Clipped.
void fill_rect(Canvas& c, int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b);

// Copies src onto dst with src's top-left at (x0, y0). Clipped.
void blit(Canvas& dst, const Canvas& src, int x0, int y0);

// Data-space rectangle mapped onto a canvas (y axis points up).
struct View {
  float xmin, xmax, ymin, ymax;
};

// Bounding box of the first two coordinates of `n` row-major points with
// `dim` columns (dim == 1: y = 0), skipping non-finite values, grown by
// `margin` * span on each side. Never returns a zero-width range; with no
// finite points returns [-1, 1] x [-1, 1].
View fit_view(const float* pts, size_t n, int dim, float margin);

// Scatter plot: set A (data) in light grey, set B (samples) in blue, as small
// discs, with a thin dark frame. na / nb count points (rows of `dim` floats).
Canvas scatter(const View& view, int w, int h, const float* pts_a, size_t na, const float* pts_b,
               size_t nb, int dim);

// Frames side by side, each a panel x panel square sharing one View fitted
// over all frames, points in blue, separated by 1-px grey lines (canvas width
// = F * panel + F - 1). Each frame is a flat row-major array of points with
// `dim` columns. If labels[i] exists it is drawn at the top-left of panel i
// (e.g. "t=999").
Canvas trajectory_strip(const std::vector<std::vector<float>>& frames, int dim, int panel,
                        const std::vector<std::string>& labels = {});

// 5x7 bitmap text, top-left at (x, y), 6 px advance per character, 8 px per
// line for '\n'. Supports digits, letters (upper case drawn as lower case),
// '=', '.', '-', ' '; other characters are drawn as a small box.
void draw_text(Canvas& c, int x, int y, const char* text, uint8_t r, uint8_t g, uint8_t b);

// Width in pixels of the longest line of `text` as drawn by draw_text.
int text_width(const char* text);

}  // namespace md::tools
