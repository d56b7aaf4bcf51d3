import XCTest
@testable import Transformer
