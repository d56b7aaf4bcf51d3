// SafetyNeurons module
