#pragma once
// Scalar math shared by CPU loops and CUDA kernels: explicit float/double overloads so the
// same call picks expf/exp on host and device alike.
#include <cmath>

#include "core/half.h"

namespace ember::math {

EMBER_HD float exp(float x) { return ::expf(x); }
EMBER_HD double exp(double x) { return ::exp(x); }
EMBER_HD float log(float x) { return ::logf(x); }
EMBER_HD double log(double x) { return ::log(x); }
EMBER_HD float sqrt(float x) { return ::sqrtf(x); }
EMBER_HD double sqrt(double x) { return ::sqrt(x); }
EMBER_HD float sin(float x) { return ::sinf(x); }
EMBER_HD double sin(double x) { return ::sin(x); }
EMBER_HD float cos(float x) { return ::cosf(x); }
EMBER_HD double cos(double x) { return ::cos(x); }
EMBER_HD float tanh(float x) { return ::tanhf(x); }
EMBER_HD double tanh(double x) { return ::tanh(x); }
EMBER_HD float erf(float x) { return ::erff(x); }
EMBER_HD double erf(double x) { return ::erf(x); }
EMBER_HD float pow(float a, float b) { return ::powf(a, b); }
EMBER_HD double pow(double a, double b) { return ::pow(a, b); }
EMBER_HD float abs(float x) { return ::fabsf(x); }
EMBER_HD double abs(double x) { return ::fabs(x); }
EMBER_HD bool isnan(float x) { return x != x; }
EMBER_HD bool isnan(double x) { return x != x; }
template <class T>
EMBER_HD bool isnan(T) { return false; }  // integers

}  // namespace ember::math
