#include "microdiffusion/data.h"

#include <math.h>
#include <string.h>

#include "microdiffusion/rng.h"

namespace md {
namespace {
constexpr double kPi = 3.14159265358979323846;
struct Name { Dataset d; const char* name; };
constexpr Name kNames[kDatasetCount] = {
    {Dataset::kSwissRoll, "swissroll"}, {Dataset::kMoons, "moons"},
    {Dataset::kEightGaussians, "8gaussians"}, {Dataset::kCircles, "circles"},
    {Dataset::kCheckerboard, "checkerboard"}};

double mean_pair_distance(const float* A, size_t n, const float* B, size_t m, uint32_t D) {
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float* a = A + i * D;
    double row = 0.0;
    for (size_t j = 0; j < m; ++j) {
      const float* b = B + j * D;
      double sq = 0.0;
      for (uint32_t k = 0; k < D; ++k) {
        const double diff = static_cast<double>(a[k]) - b[k];
        sq += diff * diff;
      }
      row += sqrt(sq);
    }
    total += row;
  }
  return total / (static_cast<double>(n) * static_cast<double>(m));
}
}  // namespace

const char* dataset_name(Dataset d) {
  for (const Name& n : kNames)
    if (n.d == d) return n.name;
  return "unknown";
}

bool dataset_from_name(const char* name, Dataset* out) {
  for (const Name& n : kNames) {
    if (strcmp(name, n.name) == 0) {
      *out = n.d;
      return true;
    }
  }
  return false;
}

uint32_t dataset_classes(Dataset d) {
  switch (d) {
    case Dataset::kEightGaussians: return 8;
    case Dataset::kMoons: return 2;
    case Dataset::kCircles: return 2;
    case Dataset::kCheckerboard: return 8;
    default: return 0;
  }
}

void make_dataset(Dataset d, uint64_t seed, uint32_t first, uint32_t n, float* out, int32_t* labels) {
  const uint32_t kind = static_cast<uint32_t>(d);
  for (uint32_t r = 0; r < n; ++r) {
    const uint32_t i = first + r;
    float u[4], z[4];
    uniform_fill(seed, RngStream::kDataset, i, 2 * kind, u, 4);
    gaussian_fill(seed, RngStream::kDataset, i, 2 * kind + 1, z, 4);
    double x = 0.0, y = 0.0;
    int32_t label = 0;
    switch (d) {
      case Dataset::kSwissRoll: {
        const double s = 1.5 * kPi * (1.0 + 2.0 * u[0]);
        x = (s * cos(s) + 0.5 * z[0]) / 10.0;
        y = (s * sin(s) + 0.5 * z[1]) / 10.0;
        break;
      }
      case Dataset::kMoons: {
        const double a = kPi * u[0];
        label = u[1] < 0.5f ? 0 : 1;
        if (label == 0) {
          x = cos(a);
          y = sin(a);
        } else {
          x = 1.0 - cos(a);
          y = 0.5 - sin(a);
        }
        x += 0.05 * z[0];
        y += 0.05 * z[1];
        break;
      }
      case Dataset::kEightGaussians: {
        const int k = static_cast<int>(u[0] * 8.0f) & 7;
        label = k;
        x = 2.0 * cos(2.0 * kPi * k / 8.0) + 0.1 * z[0];
        y = 2.0 * sin(2.0 * kPi * k / 8.0) + 0.1 * z[1];
        break;
      }
      case Dataset::kCircles: {
        const double a = 2.0 * kPi * u[0];
        label = u[1] < 0.5f ? 0 : 1;
        const double radius = label == 0 ? 1.0 : 0.5;
        x = radius * cos(a) + 0.03 * z[0];
        y = radius * sin(a) + 0.03 * z[1];
        break;
      }
      case Dataset::kCheckerboard: {
        // ffjord's checkerboard: x1 in [-2, 2), x2 in one of the squares that
        // alternate with floor(x1).
        const double x1 = 4.0 * u[0] - 2.0;
        const double x2 = u[1] - (u[2] < 0.5f ? 0.0 : 2.0);
        const double shift = fmod(floor(x1), 2.0);
        x = x1;
        y = x2 + (shift < 0 ? shift + 2.0 : shift);
        label = static_cast<int32_t>(floor(x1 + 2.0)) * 2 + (u[2] < 0.5f ? 1 : 0);
        break;
      }
    }
    out[2 * static_cast<size_t>(r)] = static_cast<float>(x);
    out[2 * static_cast<size_t>(r) + 1] = static_cast<float>(y);
    if (labels) labels[r] = label;
  }
}

double energy_distance(const float* X, size_t n, const float* Y, size_t m, uint32_t D) {
  if (n == 0 || m == 0 || D == 0) return 0.0;
  return 2.0 * mean_pair_distance(X, n, Y, m, D) - mean_pair_distance(X, n, X, n, D) -
         mean_pair_distance(Y, m, Y, m, D);
}

}  // namespace md
