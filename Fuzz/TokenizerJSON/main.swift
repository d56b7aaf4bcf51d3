// libFuzzer target: tokenizer.json (+ an optional tokenizer_config.json after a NUL byte), then encode/decode.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizerJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var json = Data(bytes), config: Data? = nil
    if let z = bytes.firstIndex(of: 0) { json = Data(bytes[..<z]); config = Data(bytes[(z + 1)...]) }
    guard let tok = try? Tokenizer.fromTokenizerJSON(json, config: config, source: "fuzz/tokenizer.json") else { return 0 }
    let ids = tok.encode("Hello wörld 🙂 <|im_start|>the  \n\t 123 ", addSpecialTokens: true)
    _ = tok.decode(ids + [-1, Int.max, tok.vocabSize], skipSpecialTokens: false)
    _ = try? tok.tokenizerJSON()
    return 0
}
