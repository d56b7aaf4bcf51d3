// libFuzzer target: safetensors header validation and dtype decoding (ModelFiles sources, one module).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let file = try? SafetensorsFile(bytes: bytes, label: "fuzz.safetensors") else { return 0 }
    for name in file.tensorNames {
        guard let info = file.info(name), info.elementCount <= 1 << 20 else { continue }
        var out = [Float](repeating: 0, count: info.elementCount)
        out.withUnsafeMutableBufferPointer { _ = try? file.decodeFloats(name, into: $0) }
    }
    return 0
}
