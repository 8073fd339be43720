/*
 * tone.h - measuring a sine in PCM, for the unit tests that check what
 * a leg hears: the Goertzel filter, header-only.
 */
#ifndef FOCUSD_TESTS_TONE_H
#define FOCUSD_TESTS_TONE_H

#include <math.h>
#include <stdint.h>

/* The power of the DFT bin at freq over n samples at rate: for a sine of
 * amplitude A centred on the bin it is (A * n / 2)^2. */
static inline double
goertzel(const int16_t *x, unsigned n, unsigned rate, double freq)
{
	double coeff = 2.0 * cos(2.0 * M_PI * freq / rate);
	double s1 = 0, s2 = 0;

	for (unsigned i = 0; i < n; i++) {
		double s = x[i] + coeff * s1 - s2;

		s2 = s1;
		s1 = s;
	}
	return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

/* The amplitude of a sine at freq, from the Goertzel power (0 for none:
 * rounding can leave the power a hair below 0). */
static inline double
tone_amplitude(const int16_t *x, unsigned n, unsigned rate, double freq)
{
	double p = goertzel(x, n, rate, freq);

	return p > 0 ? 2.0 * sqrt(p) / n : 0;
}

#endif
