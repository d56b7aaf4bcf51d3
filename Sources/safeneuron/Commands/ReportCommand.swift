import ArgumentParser
import Evaluation
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Compare evaluation folders in one table (report.md, report.html with SVG charts, report.json).",
        discussion: """
        Each RESULT_DIR is a folder with a summary.json, or a folder whose immediate subfolders have one \
        (e.g. the safety/, overrefusal/ and capability/ folders of `eval --suite all`).
        """)

    @Option(help: "Folder for report.md, report.html and report.json.") var output: String
    @Argument(help: "Evaluation folders.") var results: [String]

    func validate() throws {
        if results.isEmpty { throw ValidationError("give at least one RESULT_DIR") }
    }

    func run() throws {
        try runReporting {
            let folders = try Report.expandResultFolders(results.map { URL(fileURLWithPath: $0, isDirectory: true) })
            let out = try Report.build(folders: folders, output: URL(fileURLWithPath: output, isDirectory: true))
            print(out.table.markdown())
            FileHandle.standardError.write(Data("report: \(folders.count) summaries → \(out.markdown.path), \(out.html.path), \(out.json.path)\n".utf8))
        }
    }
}
