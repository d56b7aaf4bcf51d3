import XCTest
@testable import SafetyNeurons
