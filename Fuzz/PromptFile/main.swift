// libFuzzer target: prompt files. The first byte picks the reader: JSONL, CSV (with and without a filter) or text.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPromptFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    switch data[0] % 4 {
    case 0: _ = try? PromptFile.parseJSONL(text, source: "fuzz.jsonl")
    case 1: _ = try? PromptFile.parseCSV(text, source: "fuzz.csv")
    case 2: _ = try? PromptFile.parseCSV(text, source: "fuzz.csv", where: ["category": "a"])
    default: _ = PromptFile.parseText(text)
    }
    return 0
}
