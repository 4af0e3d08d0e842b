#define PEAK_ISA 128
#include "peak_x86.h"
