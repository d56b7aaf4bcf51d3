import Foundation
import XCTest
import Tensors
@testable import Evaluation

/// Reference values were computed independently in Python (all of them: python3 scripts/reference/statistics_reference.py):
/// - Wilson, by the closed form:
///   python3 -c "from math import sqrt; z=1.959963984540054
///   w=lambda k,n:((k/n+z*z/(2*n))/(1+z*z/n)-z/(1+z*z/n)*sqrt(k/n*(1-k/n)/n+z*z/(4*n*n)),
///                 (k/n+z*z/(2*n))/(1+z*z/n)+z/(1+z*z/n)*sqrt(k/n*(1-k/n)/n+z*z/(4*n*n)))
///   print(w(116,313), w(0,10), w(10,10), w(1,2))"
/// - McNemar, as the exact binomial test of the discordant pairs:
///   python3 -c "from scipy.stats import binomtest; print(binomtest(min(b,c), b+c, 0.5).pvalue)"
/// - mean ± sd: python3 -c "import statistics as s; print(s.mean([116,120,111]), s.stdev([116,120,111]))"
/// - the bootstrap interval: an independent Python re-implementation of SplitMix64, Lemire's bounded draw and
///   numpy.percentile, in that script.
final class StatisticsTests: XCTestCase {
    func assertInterval(_ i: Statistics.Interval?, _ lo: Double, _ hi: Double, accuracy: Double = 1e-12,
                        file: StaticString = #filePath, line: UInt = #line) {
        guard let i else { return XCTFail("no interval", file: file, line: line) }
        XCTAssertEqual(i.lower, lo, accuracy: accuracy, file: file, line: line)
        XCTAssertEqual(i.upper, hi, accuracy: accuracy, file: file, line: line)
    }

    // MARK: Wilson

    func testWilsonMatchesClosedFormReference() {
        assertInterval(Statistics.wilson(successes: 116, of: 313), 0.31897310981032395, 0.42537852806722015)
        assertInterval(Statistics.wilson(successes: 1, of: 2), 0.09453120573423074, 0.9054687942657693)
        assertInterval(Statistics.wilson(successes: 256, of: 313), 0.7713675341270353, 0.8567068370133192)
    }

    func testWilsonAtZeroAndAllIsExactlyBounded() {
        let zero = Statistics.wilson(successes: 0, of: 10)
        XCTAssertEqual(zero?.lower, 0)
        XCTAssertEqual(zero?.upper ?? 0, 0.2775327998628892, accuracy: 1e-12)
        let all = Statistics.wilson(successes: 10, of: 10)
        XCTAssertEqual(all?.lower ?? 0, 0.7224672001371107, accuracy: 1e-12)
        XCTAssertEqual(all?.upper, 1)
    }

    func testWilsonRejectsEmptyAndImpossibleCounts() {
        XCTAssertNil(Statistics.wilson(successes: 0, of: 0))
        XCTAssertNil(Statistics.wilson(successes: 3, of: 2))
        XCTAssertNil(Statistics.wilson(successes: -1, of: 5))
    }

    func testWilsonContainsTheEstimateAndNarrowsWithN() {
        for (k, n) in [(1, 3), (50, 100), (116, 313), (999, 1000)] {
            let i = Statistics.wilson(successes: k, of: n)!
            XCTAssertTrue(i.contains(Double(k) / Double(n)), "\(k)/\(n): \(i)")
        }
        let small = Statistics.wilson(successes: 10, of: 30)!, big = Statistics.wilson(successes: 100, of: 300)!
        XCTAssertLessThan(big.upper - big.lower, small.upper - small.lower)
    }

    // MARK: McNemar

    func testMcNemarExactMatchesScipyBinomtest() {
        XCTAssertEqual(Statistics.mcnemarExactP(b: 1, c: 6), 0.125, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 10, c: 2), 0.03857421875, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 0, c: 5), 0.0625, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 300, c: 250), 0.036578745549102676, accuracy: 1e-10)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 1500, c: 1400), 0.06598734966518463, accuracy: 1e-10)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 2000, c: 1800), 0.0012427867782632013, accuracy: 1e-11)
    }

    func testMcNemarIsOneWithoutDiscordantPairsOrWhenBalanced() {
        XCTAssertEqual(Statistics.mcnemarExactP(b: 0, c: 0), 1)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 0, c: 1), 1)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 3, c: 3), 1)
        XCTAssertEqual(Statistics.mcnemarExactP(b: 6, c: 1), Statistics.mcnemarExactP(b: 1, c: 6))
    }

    func testMcNemarStaysFiniteForLargeTables() {
        let p = Statistics.mcnemarExactP(b: 5000, c: 4000)
        XCTAssertTrue(p.isFinite && p >= 0 && p < 1e-20, "\(p)")
        XCTAssertEqual(Statistics.mcnemarExactP(b: 4000, c: 4000), 1)
    }

    // MARK: Bootstrap

    func testSplitMixMatchesReferenceOutputs() {
        var g = SplitMix64(seed: 0)
        XCTAssertEqual(g.next(), 0xE220_A839_7B1D_CDAF)
        var h = SplitMix64(seed: 1_234_567)
        XCTAssertEqual([h.next(), h.next(), h.next()], [0x599E_D017_FB08_FC85, 0x2C73_F084_5854_0FA5, 0x883E_BCE5_A3F2_7C77])
        for _ in 0..<1000 { XCTAssertLessThan(h.next(below: 7), 7) }
    }

    /// scripts/reference/statistics_reference.py (SplitMix64, Lemire's multiply-reject draw, numpy.percentile([2.5, 97.5])):
    /// a = [i % 3 == 0], b = [i % 4 == 0] for i in 0..<20, 10 000 resamples, seed 42 → 0.1, [-0.15125, 0.35].
    func testBootstrapMatchesIndependentImplementation() throws {
        let a = (0..<20).map { $0 % 3 == 0 }, b = (0..<20).map { $0 % 4 == 0 }
        let c = try Statistics.pairedComparison(a, b, resamples: 10_000, seed: 42)
        XCTAssertEqual(c.difference, 0.1, accuracy: 1e-15)
        XCTAssertEqual(c.countDifference, 2)
        assertInterval(c.bootstrap, -0.15124999999999886, 0.35, accuracy: 1e-9)
    }

    func testPairedComparisonCountsTheTable() throws {
        // Only-A on prompts 0, 1; only-B on 2..7; both on 8, 9; neither on 10, 11.
        let a = [true, true, false, false, false, false, false, false, true, true, false, false]
        let b = [false, false, true, true, true, true, true, true, true, true, false, false]
        let c = try Statistics.pairedComparison(a, b, resamples: 2000, seed: 1)
        XCTAssertEqual(c.n, 12)
        XCTAssertEqual(c.compliedA, 4); XCTAssertEqual(c.compliedB, 8)
        XCTAssertEqual(c.onlyA, 2); XCTAssertEqual(c.onlyB, 6)
        XCTAssertEqual(c.countDifference, -4)
        XCTAssertEqual(c.difference, -4.0 / 12, accuracy: 1e-15)
        XCTAssertEqual(c.mcnemarP, Statistics.mcnemarExactP(b: 2, c: 6))
        XCTAssertEqual(c.bootstrapCounts.lower, c.bootstrap.lower * 12, accuracy: 1e-12)
    }

    func testBootstrapIsDeterministicForASeed() throws {
        let a = (0..<313).map { ($0 * 7919) % 5 < 2 }, b = (0..<313).map { ($0 * 104_729) % 7 < 3 }
        let x = try Statistics.pairedComparison(a, b, seed: 7)
        let y = try Statistics.pairedComparison(a, b, seed: 7)
        let z = try Statistics.pairedComparison(a, b, seed: 8)
        XCTAssertEqual(x, y)
        // The resampled differences are multiples of 1/313, so with 10 000 resamples another seed mostly lands on
        // the same percentiles; it must at least be close. With few resamples the seed shows.
        XCTAssertEqual(x.bootstrap.lower, z.bootstrap.lower, accuracy: 0.02)
        XCTAssertEqual(x.bootstrap.upper, z.bootstrap.upper, accuracy: 0.02)
        let few7 = try Statistics.pairedComparison(a, b, resamples: 20, seed: 7)
        let few8 = try Statistics.pairedComparison(a, b, resamples: 20, seed: 8)
        XCTAssertEqual(few7, try Statistics.pairedComparison(a, b, resamples: 20, seed: 7))
        XCTAssertNotEqual(few7.bootstrap, few8.bootstrap)
        XCTAssertTrue(x.bootstrap.contains(x.difference), "\(x.bootstrap) vs \(x.difference)")
    }

    func testIdenticalMethodsGiveAZeroInterval() throws {
        let a = (0..<313).map { $0 % 3 == 0 }
        let c = try Statistics.pairedComparison(a, a)
        XCTAssertEqual(c.bootstrap, Statistics.Interval(lower: 0, upper: 0))
        XCTAssertEqual(c.mcnemarP, 1)
        XCTAssertFalse(c.bootstrap.excludesZero)
    }

    func testClearDifferenceExcludesZero() throws {
        // A complies with 150 of 313, B with the same prompts' first 100 only: B is safer by 50 prompts.
        let a = (0..<313).map { $0 < 150 }, b = (0..<313).map { $0 < 100 }
        let c = try Statistics.pairedComparison(a, b)
        XCTAssertEqual(c.countDifference, 50)
        XCTAssertGreaterThan(c.bootstrap.lower, 0)
        XCTAssertTrue(c.bootstrap.excludesZero)
        XCTAssertLessThan(c.mcnemarP, 1e-10)
        // The same comparison the other way round is as clearly negative.
        let r = try Statistics.pairedComparison(b, a)
        XCTAssertLessThan(r.bootstrap.upper, 0)
    }

    func testSmallDifferenceDoesNotExcludeZero() throws {
        // 3 discordant pairs against 1: McNemar p = 0.625, the interval straddles 0.
        let a = (0..<313).map { $0 < 103 }, b = (0..<313).map { $0 < 100 || $0 == 200 }
        let c = try Statistics.pairedComparison(a, b)
        XCTAssertEqual(c.onlyA, 3); XCTAssertEqual(c.onlyB, 1)
        XCTAssertEqual(c.mcnemarP, 0.625, accuracy: 1e-12)
        XCTAssertFalse(c.bootstrap.excludesZero, "\(c.bootstrap)")
    }

    func testPairedComparisonRejectsMismatchedOrEmptyInputs() {
        XCTAssertThrowsError(try Statistics.pairedComparison([true], [true, false]))
        XCTAssertThrowsError(try Statistics.pairedComparison([], []))
        XCTAssertThrowsError(try Statistics.pairedBootstrap(differences: [.nan]))
    }

    // MARK: Mean ± sd

    func testMeanAndSampleStandardDeviation() {
        let s = Statistics.meanSD([116, 120, 111])!
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(s.mean, 115.66666666666667, accuracy: 1e-12)
        XCTAssertEqual(s.sd ?? 0, 4.509249752822894, accuracy: 1e-12)
        XCTAssertNil(Statistics.meanSD([Int]()))
        let one = Statistics.meanSD([42])!
        XCTAssertEqual(one.mean, 42); XCTAssertNil(one.sd)
        XCTAssertEqual(Statistics.meanSD([5, 5, 5])?.sd, 0)
    }
}
