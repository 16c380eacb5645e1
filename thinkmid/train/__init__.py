"""Training: batched log-probs, losses (DPO, SFT, GRPO/Dr.GRPO with k3 KL), AdamW + schedule,
atomic resumable checkpoints, and the guarded step / batching helpers the stage loops share."""
