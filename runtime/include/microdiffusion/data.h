// Built-in 2-D datasets, generated from the portable generator (point i is a
// function of (seed, i) alone), and the energy-distance quality metric.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace md {

enum class Dataset : uint32_t {
  kSwissRoll = 0,     // the tutorial's: s = 1.5 pi (1 + 2u), (s cos s, s sin s) + 0.5 N(0, I), all / 10
  kMoons = 1,         // scikit-learn's two moons, noise 0.05
  kEightGaussians = 2,  // 8 modes on a circle of radius 2, std 0.1
  kCircles = 3,       // two circles, radii 1 and 0.5, noise 0.03
  kCheckerboard = 4,  // 8 squares of a 4x4 board on [-2, 2]^2
};
constexpr uint32_t kDatasetCount = 5;
constexpr uint32_t kDatasetDim = 2;

const char* dataset_name(Dataset d);
// Looks up "swissroll", "moons", "8gaussians", "circles", "checkerboard".
bool dataset_from_name(const char* name, Dataset* out);

// Points [first, first + n) of the dataset into out (n, 2), and when `labels`
// is given, each point's class: the mode (8gaussians), the moon, the circle,
// or the square (checkerboard); the swiss roll has no classes.
void make_dataset(Dataset d, uint64_t seed, uint32_t first, uint32_t n, float* out, int32_t* labels = nullptr);
// Number of classes make_dataset labels (0 for the swiss roll).
uint32_t dataset_classes(Dataset d);

// Energy distance between point sets X (n, D) and Y (m, D):
//   ED = 2 mean|X - Y| - mean|X - X'| - mean|Y - Y'|  over all pairs,
// accumulated in double. O((n + m)^2 D) time, no memory.
double energy_distance(const float* X, size_t n, const float* Y, size_t m, uint32_t D);

}  // namespace md
