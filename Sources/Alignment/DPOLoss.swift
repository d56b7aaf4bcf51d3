import Foundation
import Transformer

public enum DPOLossType: String, Codable, Sendable, CaseIterable { case sigmoid, ipo }

/// DPO objective settings (TRL's DPOConfig names: beta, loss_type, rpo_alpha).
public struct DPOConfig: Codable, Sendable, Equatable {
    public var beta: Double = 0.1
    public var lossType: DPOLossType = .sigmoid
    /// TRL's rpo_alpha: adds α × (mean token NLL of the chosen completions in the batch).
    public var rpoAlpha: Double? = nil
    public init(beta: Double = 0.1, lossType: DPOLossType = .sigmoid, rpoAlpha: Double? = nil) {
        self.beta = beta; self.lossType = lossType; self.rpoAlpha = rpoAlpha
    }
}

/// Loss, metrics and dLoss/d(sequence log-prob sums) of one batch.
public struct DPOBatchResult: Sendable {
    public var loss: Double
    public var dChosen: [Double]       // dLoss / d(Σ logp) of each chosen sequence
    public var dRejected: [Double]
    /// TRL metric names: rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
    /// logps/chosen, logps/rejected, nll_loss, loss.
    public var metrics: [String: Double]
}

public enum DPO {
    /// Loss = mean_i ℓ_i (+ α·NLL). z_i = (πc − πr) − (refc − refr).
    /// sigmoid: ℓ = −logσ(βz); ipo: ℓ = (z − 1/(2β))² with log-probs averaged per token (as TRL does for ipo).
    /// `refChosen`/`refRejected` are reference SUMS; counts come from the policy (same tokens).
    public static func compute(_ cfg: DPOConfig, policyChosen: [SequenceLogProb], policyRejected: [SequenceLogProb],
                               refChosen: [Double], refRejected: [Double]) -> DPOBatchResult {
        let n = policyChosen.count
        precondition(policyRejected.count == n && refChosen.count == n && refRejected.count == n, "batch sizes differ")
        let beta = cfg.beta
        var loss = 0.0, dC = [Double](repeating: 0, count: n), dR = dC
        var rc = 0.0, rr = 0.0, acc = 0.0, margin = 0.0, lpc = 0.0, lpr = 0.0
        for i in 0..<n {
            let avg = cfg.lossType == .ipo
            let nc = Double(max(1, policyChosen[i].count)), nr = Double(max(1, policyRejected[i].count))
            let pc = avg ? policyChosen[i].sum / nc : policyChosen[i].sum
            let pr = avg ? policyRejected[i].sum / nr : policyRejected[i].sum
            let fc = avg ? refChosen[i] / nc : refChosen[i]
            let fr = avg ? refRejected[i] / nr : refRejected[i]
            let z = (pc - pr) - (fc - fr)
            let li: Double, dz: Double
            switch cfg.lossType {
            case .sigmoid:
                let bz = beta * z
                li = bz >= 0 ? log1p(exp(-bz)) : -bz + log1p(exp(bz))       // −logσ(βz), stable both ways
                dz = -beta / (1 + exp(bz))                                     // −β·σ(−βz)
            case .ipo:
                let t = z - 1 / (2 * beta)
                li = t * t; dz = 2 * t
            }
            loss += li / Double(n)
            dC[i] = dz / Double(n) / (avg ? nc : 1)
            dR[i] = -dz / Double(n) / (avg ? nr : 1)
            let cr = beta * (pc - fc), rj = beta * (pr - fr)
            rc += cr; rr += rj; acc += cr > rj ? 1 : 0; margin += cr - rj; lpc += pc; lpr += pr
        }
        var tok = 0, nllSum = 0.0
        for p in policyChosen { tok += p.count; nllSum -= p.sum }
        let nll = tok > 0 ? nllSum / Double(tok) : 0
        if let a = cfg.rpoAlpha, tok > 0 {
            loss += a * nll
            for i in 0..<n { dC[i] += -a / Double(tok) }
        }
        let m = Double(max(1, n))
        let metrics: [String: Double] = [
            "rewards/chosen": rc / m, "rewards/rejected": rr / m, "rewards/accuracies": acc / m,
            "rewards/margins": margin / m, "logps/chosen": lpc / m, "logps/rejected": lpr / m,
            "nll_loss": nll, "loss": loss,
        ]
        return DPOBatchResult(loss: loss, dChosen: dC, dRejected: dR, metrics: metrics)
    }
}
