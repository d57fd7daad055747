//! Unsigned integers wider than a machine word, as little-endian `u64` limbs in a slice, for
//! exact counts of arrangements: the number of label arrangements giving each Mann-Whitney U
//! reaches C(633, 303) ≈ 6.4e188 inside the exact method's limit, and its generating function
//! subtracts, so floating point loses every digit of a small tail to cancellation. Counts
//! kept exactly lose nothing; only the final ratio is rounded.
//!
//! The operations work on equal-length slices (the caller keeps every number at the width of
//! the largest it will hold) and report a carry or borrow out instead of growing.

use super::double_double::scale_by_power_of_two;

/// `dst += src` over equal lengths; returns whether a carry left the top limb.
pub fn add_assign(dst: &mut [u64], src: &[u64]) -> bool {
    let mut carry = false;
    for (d, &s) in dst.iter_mut().zip(src) {
        let (sum, c1) = d.overflowing_add(s);
        let (sum, c2) = sum.overflowing_add(u64::from(carry));
        *d = sum;
        carry = c1 || c2;
    }
    carry
}

/// `dst -= src` over equal lengths; returns whether a borrow left the top limb (src > dst).
pub fn sub_assign(dst: &mut [u64], src: &[u64]) -> bool {
    let mut borrow = false;
    for (d, &s) in dst.iter_mut().zip(src) {
        let (diff, b1) = d.overflowing_sub(s);
        let (diff, b2) = diff.overflowing_sub(u64::from(borrow));
        *d = diff;
        borrow = b1 || b2;
    }
    borrow
}

/// `x *= k`; returns the limb carried out of the top.
pub fn mul_small(x: &mut [u64], k: u64) -> u64 {
    let mut carry = 0u128;
    for limb in x.iter_mut() {
        let product = u128::from(*limb) * u128::from(k) + carry;
        *limb = product as u64;
        carry = product >> 64;
    }
    carry as u64
}

/// `x /= k` (k > 0), truncating; returns the remainder.
pub fn div_small(x: &mut [u64], k: u64) -> u64 {
    let mut remainder = 0u128;
    for limb in x.iter_mut().rev() {
        let current = (remainder << 64) | u128::from(*limb);
        *limb = (current / u128::from(k)) as u64;
        remainder = current % u128::from(k);
    }
    remainder as u64
}

/// The number of limbs up to and including the highest non-zero one (0 for zero).
pub fn significant_limbs(x: &[u64]) -> usize {
    x.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1)
}

/// `x` as `mantissa · 2^exponent` with the mantissa from the top 128 bits (relative error
/// below 2⁻⁶³ before the one rounding to f64); (0, 0) for zero.
fn split(x: &[u64]) -> (f64, i32) {
    let top = significant_limbs(x);
    match top {
        0 => (0.0, 0),
        1 => (x[0] as f64, 0),
        _ => {
            let high = (u128::from(x[top - 1]) << 64) | u128::from(x[top - 2]);
            (high as f64, 64 * (top as i32 - 2))
        }
    }
}

/// The ratio `a / b` of two wide integers (b non-zero) as the nearest f64 up to a few units
/// in the last place: each is rounded once to 53 bits from its top 128, then divided, then
/// scaled by an exact power of two. Below f64's normal range the result is subnormal or 0.
pub fn ratio(a: &[u64], b: &[u64]) -> f64 {
    let ((ma, ea), (mb, eb)) = (split(a), split(b));
    if ma == 0.0 {
        return 0.0;
    }
    scale_by_power_of_two(ma / mb, ea - eb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_subtract_carry_across_limbs() {
        let mut x = [u64::MAX, u64::MAX, 0];
        assert!(!add_assign(&mut x, &[1, 0, 0]));
        assert_eq!(x, [0, 0, 1]);
        assert!(!sub_assign(&mut x, &[1, 0, 0]));
        assert_eq!(x, [u64::MAX, u64::MAX, 0]);
        assert!(sub_assign(&mut [0u64, 0], &[1, 0]));
        assert!(add_assign(&mut [u64::MAX], &[1]));
    }

    #[test]
    fn binomial_coefficients_multiply_and_divide_exactly() {
        // C(200, 100) = 90548514656103281165404177077484163874504589675413336841320
        let mut c = vec![1u64, 0, 0, 0];
        for i in 1..=100u64 {
            assert_eq!(mul_small(&mut c, 100 + i), 0);
            assert_eq!(div_small(&mut c, i), 0);
        }
        let expected = 9.054_851_465_610_328e58;
        assert!((ratio(&c, &[1]) / expected - 1.0).abs() < 1e-15);
        assert_eq!(significant_limbs(&c), 4);
        assert_eq!(significant_limbs(&[0, 0]), 0);
    }

    #[test]
    fn ratios_keep_relative_precision_far_below_one() {
        // 1 / 2^640, and 3 / 2^1060 (subnormal, 3 · 2^14 units of 2^-1074): exact.
        let mut big = vec![0u64; 11];
        big[10] = 1;
        assert_eq!(ratio(&[1], &big), 2f64.powi(-640));
        let mut huge = vec![0u64; 17];
        huge[16] = 1 << 36;
        assert_eq!(ratio(&[3], &huge), f64::from_bits(3 << 14));
        assert_eq!(ratio(&[0], &[5]), 0.0);
    }
}
