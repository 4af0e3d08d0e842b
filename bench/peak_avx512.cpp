#define PEAK_ISA 512
#include "peak_x86.h"
