global using ServerlessInference.Protocol;
