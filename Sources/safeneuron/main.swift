import ArgumentParser
import Tensors
print("safeneuron: core \(BLAS.coreName)")
