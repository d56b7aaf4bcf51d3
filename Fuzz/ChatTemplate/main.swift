// libFuzzer target: Jinja chat templates (parse + render with a small conversation).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatTemplate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let src = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var limits = ChatTemplateLimits()
    // Smaller budgets keep each execution fast; the caps themselves are what is being exercised.
    limits.maxWork = 2_000_000
    limits.maxOutputBytes = 1 << 20
    guard let t = try? ChatTemplate(source: src, name: "fuzz.jinja", limits: limits) else { return 0 }
    let messages = [ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "hi {{ x }}"),
                    ChatMessage(role: "assistant", content: "yo")]
    _ = try? t.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
    return 0
}
