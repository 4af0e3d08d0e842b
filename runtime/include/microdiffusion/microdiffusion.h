// microdiffusion: DDPM training and sampling for small MLP denoisers, in a
// caller-provided arena, with no heap, exceptions or RTTI.
#pragma once
#include "microdiffusion/arena.h"
#include "microdiffusion/data.h"
#include "microdiffusion/kernels.h"
#include "microdiffusion/likelihood.h"
#include "microdiffusion/parallel.h"
#include "microdiffusion/model.h"
#include "microdiffusion/rng.h"
#include "microdiffusion/sample.h"
#include "microdiffusion/schedule.h"
#include "microdiffusion/status.h"
#include "microdiffusion/train.h"
#include "microdiffusion/weights.h"
