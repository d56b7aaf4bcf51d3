import Foundation

/// Byte-pair-encoding model: vocabulary plus ranked merges, applied to one pre-token at a time.
final class BPEModel: @unchecked Sendable {
    let vocab: Vocabulary
    let idToToken: [String]
    /// (left id, right id) packed into 64 bits -> (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    /// The merges in rank order, kept for export.
    let mergeList: [(String, String)]
    let unkId: Int?
    let unkToken: String?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    /// Ids of the `<0xXX>` tokens, when the vocabulary has all 256.
    private let byteTokenIds: [Int]?
    /// Id of each byte's byte-level spelling (GPT-2 alphabet), for the byte-level path.
    private let byteLevelIds: [Int?]

    private var cache: [TokenString: [Int]] = [:]
    private let lock = NSLock()

    init(vocab: Vocabulary, merges: [(String, String)], unkToken: String?, fuseUnk: Bool, byteFallback: Bool,
         ignoreMerges: Bool, source: String) throws {
        guard !vocab.isEmpty else { throw TokenizerError.invalidVocabulary(source: source, reason: "empty vocabulary") }
        let count = (vocab.values.max() ?? -1) + 1
        guard count <= vocab.count * 2 + 1024 else {
            throw TokenizerError.idOutOfRange(source: source, what: "vocabulary", id: count - 1, count: vocab.count)
        }
        var inverse = [String?](repeating: nil, count: count)
        for (tok, id) in vocab {
            guard id >= 0, id < count else {
                throw TokenizerError.idOutOfRange(source: source, what: "vocabulary token \(tok.string.debugDescription)", id: id, count: count)
            }
            guard inverse[id] == nil else {
                throw TokenizerError.invalidVocabulary(source: source, reason: "id \(id) is used twice")
            }
            inverse[id] = tok.string
        }
        self.idToToken = inverse.map { $0 ?? "" }
        self.vocab = vocab
        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a] else {
                throw TokenizerError.badMerge(source: source, index: rank, merge: "\(a) \(b)", reason: "left token \(a.debugDescription) is not in the vocabulary")
            }
            guard let ib = vocab[b] else {
                throw TokenizerError.badMerge(source: source, index: rank, merge: "\(a) \(b)", reason: "right token \(b.debugDescription) is not in the vocabulary")
            }
            guard let im = vocab[a + b] else {
                throw TokenizerError.badMerge(source: source, index: rank, merge: "\(a) \(b)", reason: "merged token \((a + b).debugDescription) is not in the vocabulary")
            }
            let key = Self.pack(ia, ib)
            // HF keeps the first (best) rank when a pair is listed twice.
            if table[key] == nil { table[key] = (Int32(rank), Int32(im)) }
        }
        self.merges = table
        self.mergeList = merges
        if let unkToken {
            guard let u = vocab[unkToken] else {
                throw TokenizerError.invalidVocabulary(source: source, reason: "unk token \(unkToken.debugDescription) is not in the vocabulary")
            }
            self.unkId = u
        } else {
            self.unkId = nil
        }
        self.unkToken = unkToken
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        var bt: [Int] = []
        for b in 0..<256 {
            if let id = vocab[String(format: "<0x%02X>", b)] { bt.append(id) }
        }
        self.byteTokenIds = bt.count == 256 ? bt : nil
        self.byteLevelIds = ByteLevelMap.byteStrings.map { vocab[$0] }
    }

    @inline(__always) static func pack(_ a: Int, _ b: Int) -> UInt64 {
        UInt64(UInt32(truncatingIfNeeded: a)) << 32 | UInt64(UInt32(truncatingIfNeeded: b))
    }

    var count: Int { idToToken.count }

    /// Encode one pre-token given as its final string (byte-level spelled or metaspace-normalized).
    func encode(word: String, byteLevel: Bool, bytes: [UInt8]?) -> [Int] {
        lock.lock()
        let key = TokenString(word)
        if let hit = cache[key] { lock.unlock(); return hit }
        lock.unlock()
        let result = compute(word: word, byteLevel: byteLevel, bytes: bytes)
        lock.lock()
        if cache.count > 200_000 { cache.removeAll(keepingCapacity: true) }
        cache[key] = result
        lock.unlock()
        return result
    }

    private func compute(word: String, byteLevel: Bool, bytes: [UInt8]?) -> [Int] {
        if ignoreMerges, let id = vocab[word] { return [id] }
        var symbols: [Int] = []
        symbols.reserveCapacity(word.unicodeScalars.count)
        if byteLevel, let bytes {
            for b in bytes {
                if let id = byteLevelIds[Int(b)] { symbols.append(id) } else { appendUnknown(&symbols, Array(ByteLevelMap.byteStrings[Int(b)].utf8)) }
            }
        } else {
            var prevUnk = false
            for s in word.unicodeScalars {
                let ch = String(Character(s))
                if let id = vocab[ch] {
                    symbols.append(id)
                    prevUnk = false
                } else if byteFallback, let bt = byteTokenIds {
                    for b in ch.utf8 { symbols.append(bt[Int(b)]) }
                    prevUnk = false
                } else if let u = unkId {
                    if !(fuseUnk && prevUnk) { symbols.append(u) }
                    prevUnk = true
                }
            }
        }
        return applyMerges(symbols)
    }

    private func appendUnknown(_ symbols: inout [Int], _ utf8: [UInt8]) {
        if byteFallback, let bt = byteTokenIds {
            for b in utf8 { symbols.append(bt[Int(b)]) }
        } else if let u = unkId {
            if !(fuseUnk && symbols.last == u) { symbols.append(u) }
        }
    }

    /// Repeatedly merges the leftmost best-ranked adjacent pair; equivalent to HF's heap order
    /// (rank, then position).
    private func applyMerges(_ input: [Int]) -> [Int] {
        var symbols = input
        guard symbols.count > 1 else { return symbols }
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestPos = -1
            var bestId: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let m = merges[Self.pack(symbols[i], symbols[i + 1])], m.rank < bestRank {
                    bestRank = m.rank
                    bestPos = i
                    bestId = m.id
                }
            }
            if bestPos < 0 { break }
            symbols[bestPos] = Int(bestId)
            symbols.remove(at: bestPos + 1)
        }
        return symbols
    }
}
