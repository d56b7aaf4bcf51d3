// libFuzzer target: GGUF parsing, tensor dequantisation, tokenizer and chat template from GGUF metadata.
// Built by scripts/fuzz.sh together with the ModelFiles and Tokenization sources (one module).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let file = try? GGUFFile(bytes: bytes, label: "fuzz.gguf") else { return 0 }
    for t in file.tensorInfos where t.elementCount <= 1 << 20 && t.type.canDecode {
        _ = try? file.floats(t.name)
    }
    let m = file.metadata
    if let model = m["tokenizer.ggml.model"]?.stringValue, let tokens = m["tokenizer.ggml.tokens"]?.stringArray {
        let meta = GGUFTokenizerMetadata(
            model: model, pre: m["tokenizer.ggml.pre"]?.stringValue, tokens: tokens,
            tokenTypes: m["tokenizer.ggml.token_type"]?.intArray, merges: m["tokenizer.ggml.merges"]?.stringArray,
            scores: m["tokenizer.ggml.scores"]?.floatArray,
            bosTokenId: m["tokenizer.ggml.bos_token_id"]?.intValue, eosTokenId: m["tokenizer.ggml.eos_token_id"]?.intValue)
        if let tok = try? Tokenizer.fromGGUF(meta, source: "fuzz.gguf") {
            let ids = tok.encode("Hello wörld 🙂 <|im_start|>the", addSpecialTokens: true)
            _ = tok.decode(ids + [-1, Int.max, tok.vocabSize], skipSpecialTokens: true)
        }
    }
    if let src = m["tokenizer.chat_template"]?.stringValue, let t = try? ChatTemplate(source: src, name: "fuzz.gguf") {
        _ = try? t.render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true,
                          bosToken: "<s>", eosToken: "</s>")
    }
    return 0
}
