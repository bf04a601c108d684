// Rounding rules shared by every k-support prox kernel (sorted sweep, selection, search), so that
// they return the same exact zeros and the same head values. Pure C++: no Python types.
#pragma once

#include <limits>

namespace structdrop::rounding {

// a_i = m_i/(1 + beta) on the head.
inline double shrink_factor(double beta) { return 1.0 / (1.0 + beta); }

// A band value m_i - cut below this multiple of m_i is rounding noise of a unit that sits on the
// t = 0 breakpoint; it is returned as an exact 0 so that `rank` is stable.
constexpr double kFlush = 8.0 * std::numeric_limits<double>::epsilon();

inline double band_value(double m, double cut) {
  const double a = m - cut;
  return a > kFlush * m ? a : 0.0;
}

}  // namespace structdrop::rounding
