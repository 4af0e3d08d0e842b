#include "plot/plot.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

namespace md::tools {
namespace {

inline void set_px(Canvas& c, int x, int y, uint8_t r, uint8_t g, uint8_t b) {
  if (x < 0 || y < 0 || x >= c.w || y >= c.h) return;
  uint8_t* p = &c.rgb[(static_cast<size_t>(y) * static_cast<size_t>(c.w) + static_cast<size_t>(x)) * 3];
  p[0] = r;
  p[1] = g;
  p[2] = b;
}

// 5x7 glyphs: 7 rows per glyph, bit 4 = leftmost column.
constexpr char kGlyphChars[] = "0123456789abcdefghijklmnopqrstuvwxyz=.- ";
constexpr uint8_t kGlyphs[][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},  // 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},  // 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},  // 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},  // 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},  // 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},  // 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},  // 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},  // 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},  // 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},  // 9
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F},  // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E},  // b
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E},  // c
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F},  // d
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E},  // e
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08},  // f
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},  // h
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E},  // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C},  // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12},  // k
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},  // l
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11},  // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11},  // n
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E},  // o
    {0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10},  // p
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01},  // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10},  // r
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E},  // s
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06},  // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D},  // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04},  // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A},  // w
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11},  // x
    {0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // y
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F},  // z
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00},  // =
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},  // .
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},  // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // space
};
constexpr uint8_t kUnknownGlyph[7] = {0x00, 0x1F, 0x11, 0x11, 0x11, 0x1F, 0x00};
static_assert(sizeof(kGlyphChars) - 1 == sizeof(kGlyphs) / sizeof(kGlyphs[0]),
              "glyph table mismatch");

const uint8_t* glyph_for(char ch) {
  if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  const char* p = std::strchr(kGlyphChars, ch);
  if (ch == '\0' || p == nullptr) return kUnknownGlyph;
  return kGlyphs[p - kGlyphChars];
}

// Maps data coordinates to pixel centers; y axis up. Works in double so that
// extreme (but finite) views do not overflow.
struct Mapper {
  double x0, sx, y0, sy;
  int h;
  Mapper(const View& v, int w, int h_) : h(h_) {
    double dx = static_cast<double>(v.xmax) - v.xmin, dy = static_cast<double>(v.ymax) - v.ymin;
    if (!(dx > 0) || !std::isfinite(dx)) dx = 1;
    if (!(dy > 0) || !std::isfinite(dy)) dy = 1;
    x0 = std::isfinite(v.xmin) ? v.xmin : 0.0;
    y0 = std::isfinite(v.ymin) ? v.ymin : 0.0;
    sx = (w > 1 ? w - 1 : 0) / dx;
    sy = (h > 1 ? h - 1 : 0) / dy;
  }
  // Returns false for non-finite input or points far outside the canvas.
  bool map(float x, float y, int* px, int* py) const {
    if (!std::isfinite(x) || !std::isfinite(y)) return false;
    const double fx = (x - x0) * sx;
    const double fy = (h - 1) - (y - y0) * sy;
    constexpr double kLim = 1 << 24;
    if (!(std::fabs(fx) < kLim) || !(std::fabs(fy) < kLim)) return false;
    *px = static_cast<int>(std::lround(fx));
    *py = static_cast<int>(std::lround(fy));
    return true;
  }
};

void draw_points(Canvas& c, const Mapper& m, const float* pts, size_t n, int dim, int radius,
                 uint8_t r, uint8_t g, uint8_t b, float alpha) {
  if (pts == nullptr || dim < 1) return;
  const size_t d = static_cast<size_t>(dim);
  for (size_t i = 0; i < n; ++i) {
    const float x = pts[i * d];
    const float y = dim >= 2 ? pts[i * d + 1] : 0.0f;
    int px, py;
    if (m.map(x, y, &px, &py)) draw_point(c, px, py, radius, r, g, b, alpha);
  }
}

int point_radius(int w, int h) { return std::max(1, std::min(w, h) / 256); }

}  // namespace

Canvas make_canvas(int w, int h) {
  Canvas c;
  c.w = std::max(w, 0);
  c.h = std::max(h, 0);
  c.rgb.assign(static_cast<size_t>(c.w) * static_cast<size_t>(c.h) * 3, 255);
  return c;
}

void draw_point(Canvas& c, int x, int y, int radius, uint8_t r, uint8_t g, uint8_t b,
                float alpha) {
  if (!(alpha > 0.0f)) return;  // also rejects NaN
  const float a = std::min(alpha, 1.0f);
  const int64_t rad = std::max(radius, 0);
  const int64_t r2 = rad * rad + rad;  // slightly rounder small discs
  const int64_t y_lo = std::max<int64_t>(int64_t{y} - rad, 0);
  const int64_t y_hi = std::min<int64_t>(int64_t{y} + rad, int64_t{c.h} - 1);
  const int64_t x_lo = std::max<int64_t>(int64_t{x} - rad, 0);
  const int64_t x_hi = std::min<int64_t>(int64_t{x} + rad, int64_t{c.w} - 1);
  const float src[3] = {float(r), float(g), float(b)};
  for (int64_t yy = y_lo; yy <= y_hi; ++yy) {
    const int64_t dy = yy - y;
    for (int64_t xx = x_lo; xx <= x_hi; ++xx) {
      const int64_t dx = xx - x;
      if (dx * dx + dy * dy > r2) continue;
      uint8_t* p = &c.rgb[(static_cast<size_t>(yy) * static_cast<size_t>(c.w) + static_cast<size_t>(xx)) * 3];
      for (int k = 0; k < 3; ++k)
        p[k] = static_cast<uint8_t>(std::lround(src[k] * a + float(p[k]) * (1.0f - a)));
    }
  }
}

void fill_rect(Canvas& c, int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  if (w <= 0 || h <= 0) return;
  const int64_t x0 = std::max<int64_t>(x, 0), y0 = std::max<int64_t>(y, 0);
  const int64_t x1 = std::min<int64_t>(int64_t{x} + w, c.w), y1 = std::min<int64_t>(int64_t{y} + h, c.h);
  for (int64_t yy = y0; yy < y1; ++yy)
    for (int64_t xx = x0; xx < x1; ++xx) set_px(c, int(xx), int(yy), r, g, b);
}

void draw_rect_outline(Canvas& c, int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  if (w <= 0 || h <= 0) return;
  const int64_t right = int64_t{x} + w - 1, bottom = int64_t{y} + h - 1;
  fill_rect(c, x, y, w, 1, r, g, b);
  fill_rect(c, x, y, 1, h, r, g, b);
  if (bottom <= INT32_MAX) fill_rect(c, x, int(bottom), w, 1, r, g, b);
  if (right <= INT32_MAX) fill_rect(c, int(right), y, 1, h, r, g, b);
}

void blit(Canvas& dst, const Canvas& src, int x0, int y0) {
  const int64_t sx0 = std::max<int64_t>(0, -int64_t{x0}), sy0 = std::max<int64_t>(0, -int64_t{y0});
  const int64_t sx1 = std::min<int64_t>(src.w, int64_t{dst.w} - x0);
  const int64_t sy1 = std::min<int64_t>(src.h, int64_t{dst.h} - y0);
  if (sx0 >= sx1 || sy0 >= sy1) return;
  const size_t n = static_cast<size_t>(sx1 - sx0) * 3;
  for (int64_t sy = sy0; sy < sy1; ++sy) {
    const size_t so = (static_cast<size_t>(sy) * src.w + static_cast<size_t>(sx0)) * 3;
    const size_t d_o = (static_cast<size_t>(sy + y0) * dst.w + static_cast<size_t>(sx0 + x0)) * 3;
    std::memcpy(&dst.rgb[d_o], &src.rgb[so], n);
  }
}

View fit_view(const float* pts, size_t n, int dim, float margin) {
  double lo[2] = {HUGE_VAL, HUGE_VAL}, hi[2] = {-HUGE_VAL, -HUGE_VAL};
  if (pts != nullptr && dim >= 1) {
    const size_t d = static_cast<size_t>(dim);
    for (size_t i = 0; i < n; ++i) {
      const float v[2] = {pts[i * d], dim >= 2 ? pts[i * d + 1] : 0.0f};
      for (int k = 0; k < 2; ++k) {
        if (!std::isfinite(v[k])) continue;
        lo[k] = std::min(lo[k], double(v[k]));
        hi[k] = std::max(hi[k], double(v[k]));
      }
    }
  }
  const double m = std::isfinite(margin) && margin > 0 ? double(margin) : 0.0;
  float out[4];
  for (int k = 0; k < 2; ++k) {
    double a = lo[k], b = hi[k];
    if (a > b) {  // no finite values in this coordinate
      a = -1;
      b = 1;
    }
    double span = b - a;
    if (!(span > 0)) {  // degenerate: widen around the single value
      const double half = std::max(std::fabs(a) * 0.05, 0.5);
      a -= half;
      b += half;
      span = b - a;
    }
    a -= span * m;
    b += span * m;
    // Keep the result representable and non-degenerate in float.
    float fa = float(std::max(a, -double(FLT_MAX)));
    float fb = float(std::min(b, double(FLT_MAX)));
    if (!(fb > fa)) fb = std::nextafter(fa, FLT_MAX);
    if (!(fb > fa)) fa = std::nextafter(fb, -FLT_MAX);
    out[2 * k] = fa;
    out[2 * k + 1] = fb;
  }
  return View{out[0], out[1], out[2], out[3]};
}

Canvas scatter(const View& view, int w, int h, const float* pts_a, size_t na, const float* pts_b,
               size_t nb, int dim) {
  Canvas c = make_canvas(w, h);
  if (c.w == 0 || c.h == 0) return c;
  const Mapper m(view, c.w, c.h);
  const int rad = point_radius(c.w, c.h);
  draw_points(c, m, pts_a, na, dim, rad, 170, 170, 170, 0.55f);  // data: light grey
  draw_points(c, m, pts_b, nb, dim, rad, 31, 119, 180, 0.7f);    // samples: blue
  draw_rect_outline(c, 0, 0, c.w, c.h, 90, 90, 90);
  return c;
}

Canvas trajectory_strip(const std::vector<std::vector<float>>& frames, int dim, int panel,
                        const std::vector<std::string>& labels) {
  panel = std::max(panel, 1);
  if (frames.empty() || dim < 1) return make_canvas(panel, panel);
  const size_t d = static_cast<size_t>(dim);
  const int nf = static_cast<int>(frames.size());

  // One view over the first two coordinates of every frame's points.
  std::vector<float> all;
  size_t total = 0;
  for (const auto& f : frames) total += f.size() / d;
  all.reserve(total * 2);
  for (const auto& f : frames) {
    const size_t n = f.size() / d;
    for (size_t i = 0; i < n; ++i) {
      all.push_back(f[i * d]);
      all.push_back(dim >= 2 ? f[i * d + 1] : 0.0f);
    }
  }
  const View view = fit_view(all.data(), total, 2, 0.05f);

  Canvas c = make_canvas(nf * panel + (nf - 1), panel);
  const int rad = point_radius(panel, panel);
  for (int i = 0; i < nf; ++i) {
    Canvas p = make_canvas(panel, panel);
    const Mapper m(view, panel, panel);
    const auto& f = frames[static_cast<size_t>(i)];
    draw_points(p, m, f.data(), f.size() / d, dim, rad, 31, 119, 180, 0.6f);
    if (static_cast<size_t>(i) < labels.size() && !labels[static_cast<size_t>(i)].empty())
      draw_text(p, 3, 3, labels[static_cast<size_t>(i)].c_str(), 40, 40, 40);
    const int x0 = i * (panel + 1);
    blit(c, p, x0, 0);
    if (i + 1 < nf) fill_rect(c, x0 + panel, 0, 1, panel, 160, 160, 160);
  }
  return c;
}

void draw_text(Canvas& c, int x, int y, const char* text, uint8_t r, uint8_t g, uint8_t b) {
  if (text == nullptr) return;
  int cx = x;
  for (const char* s = text; *s; ++s) {
    if (*s == '\n') {
      cx = x;
      y += 8;
      continue;
    }
    const uint8_t* gl = glyph_for(*s);
    for (int row = 0; row < 7; ++row)
      for (int col = 0; col < 5; ++col)
        if (gl[row] & (0x10 >> col)) set_px(c, cx + col, y + row, r, g, b);
    cx += 6;
  }
}

int text_width(const char* text) {
  if (text == nullptr) return 0;
  int best = 0, cur = 0;
  for (const char* s = text; *s; ++s) {
    if (*s == '\n') {
      cur = 0;
      continue;
    }
    cur += 6;
    best = std::max(best, cur - 1);
  }
  return best;
}

}  // namespace md::tools
