/// A contiguous, row-major Float32 buffer with a shape.
///
/// Reference semantics on purpose: weights and activations are large, and hot loops work on
/// `pointer` directly without copy-on-write checks. The buffer is freed with the object.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    /// The tensor whose memory this one views (kept alive by it), nil when this tensor owns its memory.
    public let base: Tensor?

    public init(shape: [Int], zeroed: Bool = true) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.pointer = .allocate(capacity: max(1, count))
        self.base = nil
        if zeroed { pointer.initialize(repeating: 0, count: max(1, count)) }
    }

    /// A view of `shape.reduce(1, *)` floats of `base` from `offset` on: writes through either show in both.
    public init(viewing base: Tensor, offset: Int, shape: [Int]) {
        let n = shape.reduce(1, *)
        precondition(shape.allSatisfy { $0 >= 0 } && offset >= 0 && offset + n <= base.count, "view outside its base")
        self.shape = shape
        self.count = n
        self.pointer = base.pointer + offset
        self.base = base
    }

    public convenience init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "value count \(values.count) does not match shape \(shape)")
        self.init(shape: shape, zeroed: false)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: count) }
        }
    }

    deinit { if base == nil { pointer.deallocate() } }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }
    public var array: [Float] { Array(buffer) }

    public func copy() -> Tensor {
        let t = Tensor(shape: shape, zeroed: false)
        t.pointer.update(from: pointer, count: count)
        return t
    }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}
