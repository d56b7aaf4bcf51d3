import XCTest
@testable import Alignment
