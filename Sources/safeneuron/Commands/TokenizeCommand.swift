import ArgumentParser
import Foundation
import Runtime

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text as a JSON array.",
        discussion: """
        Plain mode matches Hugging Face `tokenizer(text).input_ids` (special tokens such as BOS added as the \
        tokenizer does). --chat gives the ids of the chat-templated user message with the generation prompt.
        """)

    @OptionGroup var model: ModelOptions
    @Option(help: "The text to tokenize.") var text: String
    @Flag(help: "Apply the model's chat template to the text as one user message (with the generation prompt).")
    var chat = false
    @Option(help: "A system message (with --chat).") var system: String?

    func run() throws {
        try runReporting {
            let m = try model.load()
            let ids = chat ? try m.encodeChat(user: text, system: system) : m.tokenizer.encode(text, addSpecialTokens: true)
            try printJSON(ids)
        }
    }
}
