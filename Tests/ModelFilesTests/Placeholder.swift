import XCTest
@testable import ModelFiles
